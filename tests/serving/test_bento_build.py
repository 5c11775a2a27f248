"""A built Bento serves the model version it was built with (issue #6, deliverable 7).

As a user would: ``bentoml build --arg model_uri=models:/lead-scoring/<v>`` from the
checkout, with every route to a package index or the internet closed, then
``bentoml serve <tag>`` on a free port. The served Bento must run from its own copy of
the source, so the checkout (importable here through the editable install) is hidden
from the server and its workers: a module missing from ``bentofile.yaml``'s include
list fails this test instead of being picked up from the checkout. The champion alias
moves on, before the Bento starts and while it runs; the Bento keeps serving the
version it was built with, and says so in ``/model`` and in every result.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import register_model, spawn_server, stop_server, wait_until
from tests.serving.conftest import NOW, lead_payload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BENTOML_CLI = (sys.executable, "-c",
               "import sys; from bentoml_cli.cli import cli; sys.exit(cli())")
# Any attempt to reach an index or the internet fails at once instead of hanging.
DEAD_PROXY = "http://127.0.0.1:9"
OFFLINE = {
    **{key: DEAD_PROXY for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                   "http_proxy", "https_proxy", "all_proxy")},
    "NO_PROXY": "", "no_proxy": "", "UV_OFFLINE": "1", "PIP_NO_INDEX": "1",
}


def build_bento(model_uri: str) -> Path:
    """``bentoml build`` the checkout offline, pinned to ``model_uri``; the Bento's path."""
    env = {**os.environ, **OFFLINE}
    out = subprocess.run([*BENTOML_CLI, "build", "--arg", f"model_uri={model_uri}",
                          "--output", "tag"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"bentoml build failed:\n{out.stdout}\n{out.stderr}"
    tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    return Path(os.environ["BENTOML_HOME"]) / "bentos" / name / version


def hide_checkout(tmp_path: Path) -> dict[str, str]:
    """Environment in which no Python process (the server, its workers) can import the
    checkout: a ``sitecustomize`` drops it from ``sys.path`` after the editable install's
    ``.pth`` put it there, and ``PYTHONSAFEPATH`` keeps the working directory out."""
    site = tmp_path / "hide-checkout"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        f"sys.path[:] = [p for p in sys.path if os.path.realpath(p or '.') != {str(REPO)!r}]\n"
    )
    env = {"PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; "
         "print([m for m in ('serving', 'leadscore') if u.find_spec(m)])"],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert probe.stdout.strip() == "[]", (
        "the checkout is still importable with it hidden (is the project installed "
        f"non-editable?): {probe.stdout}{probe.stderr}"
    )
    return env


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (BentoML's workers run in sessions of their own)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found


def wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    """Wait for ``/readyz``; fail at once, with the log, if the server dies or a worker
    fails to start (BentoML keeps restarting a worker that cannot import the service)."""
    def ready() -> bool:
        text = log.read_text()
        if proc.poll() is not None or "Traceback" in text:
            raise AssertionError(f"the built Bento failed to start:\n{text[-4000:]}")
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200

    wait_until(ready, 120, "the built Bento to be ready")


# MLflow warns that LeadScoringModel.predict's `Any` hints disable its input validation;
# that is deliberate (the pyfunc takes feature frames of any width).
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")
# MLflow's SQLAlchemy store uses a loader strategy SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
def test_built_bento_serves_its_pinned_version(tmp_path, crm, lead_model, other_model):
    pinned = register_model(lead_model, tmp_path, experiment="bento-build")
    uri = f"models:/lead-scoring/{pinned}"
    bento = build_bento(uri)
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["args"] == {"model_uri": uri}
    # Offline: the requirements were not resolved against an index.
    assert not (bento / "env" / "python" / "requirements.lock.txt").exists()

    # A newer champion before the Bento starts...
    newer = register_model(other_model, tmp_path, experiment="bento-build")
    assert newer != pinned
    env = {**os.environ, **OFFLINE, **hide_checkout(tmp_path), "LEADSCORE_API_KEY": "k",
           "LEADSCORE_POLL_INTERVAL_S": "1", "OMP_NUM_THREADS": "1"}
    tag = f"{info['name']}:{info['version']}"
    log = tmp_path / "bento.log"
    base, proc = spawn_server(env, log, command=[*BENTOML_CLI, "serve", tag,
                                                 "--host", "127.0.0.1"])
    workers: list[int] = []
    try:
        wait_ready(base, proc, log)
        workers = descendants(proc.pid)
        auth = {"Authorization": "Bearer k"}
        leads, acts = crm
        body = {"leads": [lead_payload(leads, acts, i) for i in range(5)],
                "as_of": NOW.isoformat()}
        assert any(lead["activities"] for lead in body["leads"])

        def assert_serves_pinned() -> None:
            model = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
            assert (model["status"], model["pinned"], model["model_uri"], model["model_alias"],
                    model["model_version"]) == ("ready", True, uri, None, pinned), model
            results = httpx.post(f"{base}/score", headers=auth, json=body,
                                 timeout=30).json()["results"]
            assert [(x["scored_by"], x["model_version"]) for x in results] == \
                [("model", pinned)] * len(body["leads"])
            assert all(x["reasons"] for x in results)
            assert all(r["sentence"] for x in results for r in x["reasons"])

        assert_serves_pinned()
        assert httpx.post(f"{base}/score", json=body, timeout=10).status_code == 401
        assert httpx.get(f"{base}/model", timeout=10).status_code == 401
        # The marketers' page is served from the Bento's copy of serving/ui.
        page = httpx.get(f"{base}/ui/", headers=auth, timeout=10, follow_redirects=True)
        assert page.status_code == 200 and "<html" in page.text.lower()

        # ... and another one while it runs: an alias-following service polling every
        # second would have swapped within three.
        newest = register_model(lead_model, tmp_path, experiment="bento-build")
        assert newest not in (pinned, newer)
        time.sleep(3)
        assert_serves_pinned()
    finally:
        stop_server(proc)
        for pid in workers:  # normally gone with the server; never leave one behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert "Traceback" not in log.read_text()
