"""MLflow's tracking and registry store on a real PostgreSQL server, as a team shares one.

``leadscore train --promote`` writes to ``MLFLOW_TRACKING_URI=postgresql+psycopg://...``
(MLflow creates and migrates its schema on the fresh database), artifacts go to the
shared ``LEADSCORE_ARTIFACT_ROOT`` (not ``./mlruns`` of the current directory), and a
real ``leadscore serve`` started on the same store serves the promoted version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from leadscore.cli import app
from tests.servers import spawn_server, stop_server, wait_until
from tests.training.conftest import MLFLOW_WARNINGS

pytestmark = [pytest.mark.integration, pytest.mark.slow, *MLFLOW_WARNINGS]

runner = CliRunner(env={"COLUMNS": "300"})


def _alembic_head() -> str:
    """The newest revision of the MLflow schema migrations that ship with the package."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import mlflow

    migrations = Path(mlflow.__file__).parent / "store" / "db_migrations"
    config = Config()
    config.set_main_option("script_location", str(migrations))
    return ScriptDirectory.from_config(config).get_current_head()


def _payload(directory: Path) -> tuple[dict, pd.Timestamp]:
    """One lead that is still open at the data's end, with its activities, as JSON."""
    leads = pd.read_parquet(directory / "leads.parquet")
    acts = pd.read_parquet(directory / "activities.parquet")
    as_of = acts["occurred_at"].max().ceil("D")
    open_ = leads[leads["converted_at"].isna() & leads["disqualified_at"].isna()]
    busy = acts[acts["lead_id"].isin(open_["lead_id"])]["lead_id"].value_counts()
    row = leads.set_index("lead_id").loc[busy.index[0]]
    lead = {"lead_id": busy.index[0], "created_at": row["created_at"].isoformat()}
    for key in ("source", "utm_campaign", "country", "industry", "company_size",
                "job_title", "seniority", "job_function", "email"):
        value = row[key]
        lead[key] = None if pd.isna(value) else (float(value) if key == "company_size"
                                                 else str(value))
    mine = acts[acts["lead_id"] == busy.index[0]]
    lead["activities"] = [{"type": t, "occurred_at": o.isoformat()}
                          for t, o in zip(mine["type"], mine["occurred_at"], strict=True)]
    return lead, as_of


def test_train_promote_and_serve_from_a_postgres_store(postgres_url, synthetic_dir, tmp_path,
                                                       monkeypatch):
    shared = tmp_path / "shared-artifacts"
    workdir = tmp_path / "somewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # where MLflow alone would have put ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_url)
    monkeypatch.setenv("LEADSCORE_ARTIFACT_ROOT", str(shared))

    # 1. Train through the CLI on the PostgreSQL URI (psycopg 3 driver), and promote.
    result = runner.invoke(app, ["train", "--data", str(synthetic_dir), "--promote",
                                 "--num-boost-round", "60"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model_version"] == "1" and summary["promotion"]["promoted"] is True

    # 2. The store really is that database, migrated to MLflow's newest schema.
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            alias = conn.execute(text(
                "SELECT version FROM registered_model_aliases "
                "WHERE name = 'lead-scoring' AND alias = 'champion'")).scalar_one()
            n_runs = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert revision == _alembic_head()
    assert {"experiments", "runs", "registered_models", "model_versions"} <= tables
    assert (alias, n_runs) == (1, 1)

    # 3. Artifacts went to the shared root, none to the current directory.
    from leadscore.settings import Settings
    from training.tracking import configure

    client = configure(Settings())
    run = client.get_run(summary["run_id"])
    assert run.info.artifact_uri.startswith(shared.as_uri() + "/")
    assert list(shared.rglob("MLmodel")), "no model under the shared artifact root"
    assert not (workdir / "mlruns").exists()

    # 4. A real server on the same store serves the promoted version.
    env = {**os.environ, "LEADSCORE_API_KEY": "k", "OMP_NUM_THREADS": "1"}
    log = tmp_path / "server.log"
    base, proc = spawn_server(env, log)
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200,
                   120, "the server to be ready")
        auth = {"Authorization": "Bearer k"}
        info = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
        assert (info["model_version"], info["status"]) == ("1", "ready")
        lead, as_of = _payload(synthetic_dir)
        r = httpx.post(f"{base}/score", headers=auth, timeout=30,
                       json={"leads": [lead], "as_of": as_of.isoformat()})
        assert r.status_code == 200, r.text
        x = r.json()["results"][0]
        assert (x["scored_by"], x["model_name"], x["model_version"]) == ("model", "lead-scoring",
                                                                         "1")
        assert x["fallback_reason"] is None and 0 <= x["probability"] <= 1
    finally:
        stop_server(proc)
    assert lead["email"] not in log.read_text(), "an email address reached the log"
