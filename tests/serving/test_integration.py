"""The real server in a subprocess, over HTTP: the issue's Done-when flow.

``leadscore serve`` starts with an empty registry (the rules answer, ``no_model``), a
model is then registered and promoted in the same MLflow store, and the running server
picks it up without a restart.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.servers import register_model, spawn_server, stop_server, wait_until
from tests.serving.conftest import NOW, lead_payload

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path, isolated_env):
    env = {**os.environ, "LEADSCORE_API_KEY": "k", "LEADSCORE_POLL_INTERVAL_S": "1",
           "OMP_NUM_THREADS": "1"}
    base, proc = spawn_server(env, tmp_path / "server.log")
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200,
                   120, "the server to be ready")
        yield base
    finally:
        stop_server(proc)
        text = (tmp_path / "server.log").read_text()
        assert "@" not in text.replace("@champion", ""), "an email address reached the log"


# MLflow warns that LeadScoringModel.predict's `Any` hints disable its input validation;
# that is deliberate (the pyfunc takes feature frames of any width).
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")
# MLflow's SQLAlchemy store uses a loader strategy SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
def test_done_when_flow_over_http(server, crm, lead_model, other_model, tmp_path):
    leads, acts = crm
    auth = {"Authorization": "Bearer k"}
    lead = lead_payload(leads, acts, 0)
    body = {"leads": [lead], "as_of": NOW.isoformat()}

    assert httpx.post(f"{server}/score", json=body).status_code == 401
    r = httpx.post(f"{server}/score", headers=auth,
                   json={"leads": [{"created_at": "2026-01-01T00:00:00Z"}]})
    assert r.status_code == 422 and "leads[0].lead_id" in r.json()["detail"][0]

    x = httpx.post(f"{server}/score", headers=auth, json=body).json()["results"][0]
    assert (x["scored_by"], x["fallback_reason"]) == ("rules", "no_model")
    assert httpx.get(f"{server}/readyz").json()["status"] == "degraded"

    version = register_model(lead_model, tmp_path, experiment="serving-it")
    info = wait_until(
        lambda: (m := httpx.get(f"{server}/model", headers=auth).json())["model_version"]
        == version and m, 60, "the promotion to be picked up",
    )
    assert info["status"] == "ready" and info["model_alias"] == "champion"

    r = httpx.post(f"{server}/score", headers=auth, json=body, timeout=30)
    x = r.json()["results"][0]
    assert (x["scored_by"], x["model_version"]) == ("model", version)
    assert x["reasons"] and all(reason["sentence"] for reason in x["reasons"])
    assert {"probability", "score", "grade", "route", "model_name", "rules_version"} <= set(x)
    assert r.headers["x-request-id"]

    # /metrics (behind the key) merges the workers' counts: the rules' answer and the
    # model's, each under its own labels, and no lead data in any label.
    assert httpx.get(f"{server}/metrics").status_code == 401
    metrics = httpx.get(f"{server}/metrics", headers=auth).text
    assert 'leadscore_scored_leads_total{fallback_reason="no_model",model_version="",' \
           'scored_by="rules"} 1.0' in metrics
    assert ('leadscore_scored_leads_total{fallback_reason="none",model_version="'
            f'{version}",scored_by="model"}} 1.0') in metrics
    assert "@" not in metrics

    # A second version is promoted (recorded in the alias history), then `leadscore
    # rollback` moves champion back: the running server serves the first version again
    # at its next poll (1 s here), as it picks up any promotion. Same server: no restart.
    _promote_then_roll_back(server, auth, body, version, other_model, tmp_path)


POLL_S = 1.0  # LEADSCORE_POLL_INTERVAL_S of the fixture's server
LOAD_BUDGET_S = 4.0
"""Loading and smoke-testing a version once the poll saw the move (a pyfunc from the
SQLite store: about 1 s on this machine; the budget allows for a loaded CI box)."""


def _promote_then_roll_back(server, auth, body, first, other_model, tmp_path):
    import time

    from typer.testing import CliRunner

    from leadscore.cli import app
    from leadscore.settings import Settings
    from training import tracking
    from training.promote import alias_history, move_alias

    settings = Settings()
    client = tracking.configure(settings)
    second = register_model(other_model, tmp_path, experiment="serving-it", promote=False)
    move_alias(settings, client, second, from_version=first, action="promote", why="test")
    wait_until(lambda: httpx.get(f"{server}/model", headers=auth).json()["model_version"]
               == second, 60, "the promotion to be picked up")

    rolled = CliRunner().invoke(app, ["rollback", "--reason", "the new version converts worse"])
    moved_at = time.monotonic()
    assert rolled.exit_code == 0, rolled.output
    assert tracking.resolve_alias(settings)[1] == first
    info = wait_until(
        lambda: (m := httpx.get(f"{server}/model", headers=auth, timeout=5).json())[
            "model_version"] == first and m, POLL_S + LOAD_BUDGET_S, "the rollback to be served",
        interval=0.1)
    took = time.monotonic() - moved_at
    assert info["status"] == "ready" and took <= POLL_S + LOAD_BUDGET_S, took
    x = httpx.post(f"{server}/score", headers=auth, json=body, timeout=30).json()["results"][0]
    assert (x["scored_by"], x["model_version"]) == ("model", first)
    # The history: the promotion made here, then the rollback, with why.
    assert [(e["action"], e["version"], e["from"]) for e in alias_history(settings)] == [
        ("promote", second, first), ("rollback", first, second)]
    assert alias_history(settings)[-1]["why"] == "the new version converts worse"
