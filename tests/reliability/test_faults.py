"""Faults: the registry down at start, bad model versions under load, a failing disk.

Covered elsewhere and not repeated here (CI time is shared):

- a batch job killed mid-run (SIGKILL to the CLI, its nanny and its worker), rerun
  complete with no duplicates: ``tests/serving/test_batch.py::
  test_killed_run_restarts_without_duplicates`` (marked integration);
- ENOSPC on the first run of an output: ``test_full_disk_fails_clearly_commits_nothing_
  and_resumes`` there. Here the disk fills on a *second* run, with a committed run in
  place, and the unusable location goes through the real command line.

How the disk faults are made: the tests run as root, which ignores permission bits,
and a tmpfs cannot be mounted here, so "read-only or unusable" is an output path whose
parent is a regular file (``mkdir`` fails with ENOTDIR whoever you are), and "disk full"
is ``pyarrow.parquet.write_table`` monkeypatched to raise ``OSError(ENOSPC)`` after two
partitions, in-process (Dask workers as threads so the patch reaches them).
"""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.reliability.conftest import (
    AUTH,
    LOAD_CLIENTS,
    free_port,
    payload,
    promote,
    register,
    start_server,
    stop_server,
    wait_until,
)
from tests.reliability.test_load import _load

pytestmark = [pytest.mark.reliability]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_registry_unreachable_at_start_rules_answer_and_ready_is_degraded(tmp_path):
    # A tracking server on a port nobody listens on; no retries so start-up is quick.
    dead = f"http://127.0.0.1:{free_port()}"
    server = start_server(tmp_path, tracking_uri=dead,
                          extra_env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                                     "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"})
    try:
        ready = wait_until(lambda: httpx.get(f"{server.base}/readyz", timeout=2).json(),
                           120, "the server to answer /readyz")
        assert ready["status"] == "degraded" and ready["scored_by"] == "rules"
        with httpx.Client(headers=AUTH, timeout=30) as http:
            for i in range(5):
                r = http.post(f"{server.base}/score", json=payload(i))
                assert r.status_code == 200, r.text
                x = r.json()["results"][0]
                assert (x["scored_by"], x["fallback_reason"]) == ("rules", "no_model")
            info = http.get(f"{server.base}/model").json()
        assert info["status"] == "degraded" and info["last_poll_error"], info
    finally:
        stop_server(server)
    assert server.proc.returncode in (0, -15), server.log_text()[-2000:]


def _corrupt_artifacts(version: str, env: dict[str, str]) -> int:
    """Overwrite every file of a registered version's artifacts with garbage."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("LEADSCORE_HOME", "MLFLOW_TRACKING_URI"):
            mp.setenv(key, env[key])
        from leadscore.settings import Settings
        from training import tracking

        settings = Settings()
        client = tracking.configure(settings)
        uri = client.get_model_version_download_uri(settings.model_name, version)
    root = Path(uri.removeprefix("file://"))
    n = 0
    for path in root.rglob("*"):
        if path.is_file() and path.name not in ("MLmodel",):
            path.write_bytes(b"\x80\x04 not a model")
            n += 1
    return n


@pytest.mark.integration
@pytest.mark.slow
def test_bad_versions_are_refused_under_load_and_the_old_one_keeps_serving(
        fresh_model_server, lead_model):
    server = fresh_model_server
    first = httpx.get(f"{server.base}/model", headers=AUTH, timeout=5).json()["model_version"]
    stale = copy.copy(lead_model)
    stale.feature_set_version = "1999.1"  # trained on another feature set
    refused: list[dict[str, Any]] = []

    def promote_bad_versions() -> None:
        for kind in ("incompatible", "corrupt"):
            if kind == "incompatible":
                version = register(stale, server.tmp, server.env)
            else:
                version = register(lead_model, server.tmp, server.env, promote=False)
                assert _corrupt_artifacts(version, server.env) > 0
                promote(version, server.env)
            info = wait_until(
                lambda v=version: (m := httpx.get(f"{server.base}/model", headers=AUTH,
                                                  timeout=5).json())["last_refusal"]
                and m["last_refusal"]["version"] == v and m, 60, f"{kind} v{version} refused")
            refused.append(info)

    out = asyncio.run(_load(server.base, 12.0, LOAD_CLIENTS, during=promote_bad_versions))
    assert len(refused) == 2, refused
    for info in refused:
        assert info["model_version"] == first and info["status"] == "ready", info
    assert "feature_set_version" in refused[0]["last_refusal"]["reason"]
    assert "failed to load" in refused[1]["last_refusal"]["reason"]
    assert not out["dropped"] and set(out["statuses"]) == {200}, out
    assert set(out["versions"]) == {f"model/{first}"}, out["versions"]


def test_unusable_output_location_fails_clearly_through_the_cli(tmp_path, crm):
    from tests.serving.test_batch import _write_crm

    data = _write_crm(*crm, tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    run = subprocess.run(
        [sys.executable, "-c", "from leadscore.cli import main; main()", "rescore",
         "--data", str(data), "--out", str(blocker / "out")],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
        text=True, timeout=120,
    )
    text = run.stdout + run.stderr
    assert run.returncode == 2, text[-2000:]
    assert "cannot prepare the output directory" in text and "Traceback" not in text
    assert blocker.read_text() == "not a directory"


def test_disk_full_on_a_rerun_keeps_the_committed_run_and_marks_nothing_complete(
        tmp_path, crm, monkeypatch):
    from features.errors import LeadscoreError
    from serving import batch
    from tests.serving.conftest import NOW
    from tests.serving.test_batch import (
        _read,
        _rules_only,
        _settings,
        _write_crm,
        disk_full_after,
    )

    data = _write_crm(*crm, tmp_path / "data")
    out = tmp_path / "out"
    write_until_full = disk_full_after(2, batch.pq.write_table)

    with batch.dask_client("local", workers=2, processes=False) as client:
        first = batch.rescore(data, out, settings=_settings(), as_of=NOW,
                              source=_rules_only(), client=client, n_partitions=6)
        before = _read(out / "scores")
        monkeypatch.setattr(batch.pq, "write_table", write_until_full)
        with pytest.raises(LeadscoreError, match="the device is full"):
            batch.rescore(data, out, settings=_settings(), as_of=NOW + pd.Timedelta(days=7),
                          source=_rules_only(), client=client, n_partitions=6)
    # Readers still see the first run, whole; the failed run is nowhere marked complete.
    assert os.readlink(out / "scores") == os.path.join("runs", first.run_id)
    pd.testing.assert_frame_equal(_read(out / "scores"), before)
    assert [p.parent.name for p in (out / "runs").glob("*/_SUCCESS")] == [first.run_id]
    assert not list((out / "runs").glob("*/*.tmp*"))
