"""Batch rescoring: open-lead filter, partitioning, reasons identity, commit, resume, Dask.

Fast tests use hand-built frames and an in-process cluster; ``integration`` tests start
a real LocalCluster of worker processes (and one kills a run with SIGKILL).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.errors import LeadscoreError
from serving import batch
from serving.batch import (
    GRADES,
    OUTPUT_SCHEMA,
    ModelSource,
    engine_loads,
    grade_movements,
    open_leads,
    partition_of,
    score_partition_frame,
)
from tests.servers import register_model

REPO = Path(__file__).resolve().parents[2]
T0 = pd.Timestamp("2026-03-01T00:00:00Z")


class MemoryLoader:
    """Loads a LeadModel from memory (picklable, so it travels to worker processes)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, candidate: Any) -> Any:
        return self.model


def _candidate(version: str = "1") -> Any:
    from serving.lifecycle import Candidate

    return Candidate("lead-scoring", version, "champion", f"models:/lead-scoring/{version}")


def _settings(**kw: Any) -> Any:
    from leadscore.settings import Settings

    return Settings(**kw)


def _engine(model: Any, policy: str = "auto") -> Any:
    return batch.build_engine(ModelSource(_candidate(), _settings(cold_start_policy=policy),
                                          MemoryLoader(model)))


def _write_crm(leads: pd.DataFrame, acts: pd.DataFrame, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    leads.to_parquet(where / "leads.parquet", index=False)
    acts.to_parquet(where / "activities.parquet", index=False)
    return where


def _read(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


# --------------------------------------------------------------------------- unit


def test_open_leads_follows_the_eligibility_rule():
    leads = pd.DataFrame({
        "lead_id": list("abcdef"),
        "created_at": pd.to_datetime([T0 - pd.Timedelta(days=5)] * 5 + [T0], utc=True),
        "converted_at": pd.to_datetime([None, T0 - pd.Timedelta(days=1), T0, None, None, None],
                                       utc=True),
        "disqualified_at": pd.to_datetime([None, None, None, T0 - pd.Timedelta(hours=1),
                                           T0 + pd.Timedelta(days=1), None], utc=True),
    })
    # a: open; b: converted before; c: converted at as_of (still open then, as in
    # training); d: disqualified before; e: disqualified after (open); f: created at as_of.
    assert open_leads(leads, T0).tolist() == [True, False, True, False, True, False]


def test_partition_of_is_stable_total_and_spread():
    ids = pd.Series([f"L-{i:07d}" for i in range(20_000)])
    parts = partition_of(ids, 16)
    assert parts.min() >= 0 and parts.max() < 16
    assert np.array_equal(parts, partition_of(ids.tolist(), 16))
    counts = np.bincount(parts, minlength=16)
    assert counts.min() > 0.8 * len(ids) / 16  # no partition starves
    # The same id is in the same partition whatever else is in the call.
    assert partition_of(ids.iloc[[123]], 16)[0] == parts[123]
    # Pinned values: a changed hash would silently break resuming an interrupted run.
    code = "from serving.batch import partition_of; print(partition_of(['L-0000001','x'], 7))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=REPO, check=True)
    assert other.stdout.strip() == str(partition_of(["L-0000001", "x"], 7))


def test_default_partitions_depend_on_data_only():
    assert batch.default_partitions(10) == 4
    assert batch.default_partitions(1_000_000) == 40


def test_grade_movements_counts_up_down_new_gone():
    prev = pd.DataFrame({"lead_id": ["a", "b", "c", "d"], "grade": ["D", "A", "B", "C"]})
    cur = pd.DataFrame({"lead_id": ["a", "b", "c", "e"], "grade": ["C", "B", "B", "A"]})
    assert grade_movements(prev, cur) == {"up": 1, "down": 1, "same": 1, "new": 1, "gone": 1}
    assert grade_movements(None, cur)["new"] == 4
    assert GRADES == ("A", "B", "C", "D")


def test_fingerprint_changes_with_any_part_of_the_identity():
    base = {"as_of": "2026-03-01", "model_version": "1", "n_partitions": 4}
    fp = batch.fingerprint(base)
    assert fp == batch.fingerprint(dict(reversed(list(base.items()))))
    for key, value in (("as_of", "2026-03-02"), ("model_version", "2"), ("n_partitions", 5)):
        assert batch.fingerprint({**base, key: value}) != fp


def test_write_atomic_leaves_nothing_when_the_disk_is_full(tmp_path, monkeypatch):
    import pyarrow as pa

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    where = tmp_path / "scores"
    where.mkdir()
    monkeypatch.setattr(batch.pq, "write_table", full)
    with pytest.raises(OSError):
        batch._write_atomic(pa.table({"a": [1]}), where / "part-00000.parquet")
    assert list(where.iterdir()) == []


@pytest.mark.parametrize("policy", ["auto", "rules"])
@pytest.mark.parametrize("top", [1, 3])
def test_columnar_reasons_equal_the_core_row_for_row(lead_model, crm, policy, top):
    from tests.serving.conftest import NOW

    leads, acts = crm
    # A few leads with no history at all: cold starts, answered by the rules under "rules".
    acts = acts[~acts["lead_id"].isin(leads["lead_id"].iloc[:25])]
    engine = _engine(lead_model, policy)
    kw = {"as_of": NOW, "top_reasons": top, "scored_at": NOW, "run_id": "r"}
    fast = score_partition_frame(leads, acts, engine, reasons_path="columnar", **kw)
    core = score_partition_frame(leads, acts, engine, reasons_path="core", **kw)
    assert fast.schema == OUTPUT_SCHEMA
    assert fast.equals(core), "the columnar reasons path differs from score_frame"
    by = pd.Series(fast.column("scored_by").to_pylist()).value_counts()
    assert by.get("model", 0) > 0
    if policy == "rules":
        assert by.get("rules", 0) >= 25  # ours, plus leads make_crm gave no activity


def test_columnar_path_falls_back_to_the_core_when_the_model_fails(lead_model, crm,
                                                                    monkeypatch):
    from tests.serving.conftest import NOW

    leads, acts = crm
    engine = _engine(lead_model)
    monkeypatch.setattr(type(lead_model), "predict_margin_and_contributions",
                        lambda self, X: (_ for _ in ()).throw(RuntimeError("boom")))
    few = leads.iloc[:5]
    acts = acts[acts["lead_id"].isin(few["lead_id"])]
    out = score_partition_frame(few, acts, engine, as_of=NOW, top_reasons=3,
                                scored_at=NOW, run_id="r")
    assert set(out.column("fallback_reason").to_pylist()) == {"model_error"}


# --------------------------------------------------------------------------- in-process runs


@pytest.fixture
def thread_client():
    """A Dask client on in-process workers (threads): fast, and monkeypatches reach them."""
    with batch.dask_client("local", workers=2, processes=False) as client:
        yield client


def _rules_only(settings: Any = None) -> ModelSource:
    return ModelSource(None, settings or _settings())


def test_commit_swaps_scores_and_rerun_is_a_no_op(tmp_path, crm, thread_client):
    from tests.serving.conftest import NOW

    data = _write_crm(*crm, tmp_path / "data")
    out = tmp_path / "out"
    first = batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                          client=thread_client, n_partitions=5)
    assert (out / "scores").is_symlink() and (out / "scores" / "_SUCCESS").is_file()
    scores = _read(out / "scores")
    assert len(scores) == first.leads_scored == len(crm[0])
    assert scores["lead_id"].is_unique and set(scores["fallback_reason"]) == {"no_model"}
    assert first.previous_run is None and not (out / ".staging" / first.run_id).exists()
    again = batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                          client=thread_client, n_partitions=5)
    assert again.already_committed and again.run_id == first.run_id
    later = batch.rescore(data, out, settings=_settings(), as_of=NOW + pd.Timedelta(days=30),
                          source=_rules_only(), client=thread_client, n_partitions=5)
    assert later.previous_run == first.run_id
    assert os.readlink(out / "scores") == os.path.join("runs", later.run_id)
    assert sum(later.movements[k] for k in ("up", "down", "same")) == len(crm[0])
    assert later.movements["down"] > 0  # thirty quiet days: scores decay
    history = _read(out / "history")
    assert sorted(history["run_id"].unique()) == sorted([first.run_id, later.run_id])


def disk_full_after(n_parts: int, real: Any) -> Any:
    """A ``pyarrow.parquet.write_table`` whose device fills up after ``n_parts`` score
    parts: each later part raises ENOSPC, as a real full disk would."""
    written: list[str] = []
    lock = threading.Lock()

    def write_until_full(table: Any, where: Any, **kw: Any) -> None:
        # Dask workers may be threads: count under a lock, or a third part slips past.
        name = str(getattr(where, "name", where))
        if "/scores/" in name:
            with lock:
                if len(written) >= n_parts:
                    raise OSError(errno.ENOSPC, "No space left on device")
                written.append(name)
        real(table, where, **kw)

    return write_until_full


def test_full_disk_fails_clearly_commits_nothing_and_resumes(tmp_path, crm, thread_client,
                                                            monkeypatch):
    from tests.serving.conftest import NOW

    data = _write_crm(*crm, tmp_path / "data")
    out = tmp_path / "out"
    real = batch.pq.write_table
    # Output partitions are written through an open temporary file; let two through.
    monkeypatch.setattr(batch.pq, "write_table", disk_full_after(2, real))
    with pytest.raises(LeadscoreError, match="the device is full.*Nothing was committed"):
        batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                      client=thread_client, n_partitions=6)
    assert not (out / "scores").exists() and not (out / "runs").exists()
    staged = list((out / ".staging").glob("*/scores/*"))
    assert len(staged) == 2 and all(p.name.startswith("part-") for p in staged)  # no more later
    monkeypatch.setattr(batch.pq, "write_table", real)
    result = batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                           client=thread_client, n_partitions=6)
    assert result.partitions_skipped == 2 and _read(out / "scores")["lead_id"].is_unique


def test_unusable_output_location_is_a_clear_error(tmp_path, crm):
    from tests.serving.conftest import NOW

    data = _write_crm(*crm, tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(LeadscoreError, match="cannot prepare the output directory"):
        batch.rescore(data, blocker / "out", settings=_settings(), as_of=NOW,
                      source=_rules_only())


def test_a_second_rescore_on_the_same_output_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with (out / ".lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LeadscoreError, match="another 'leadscore rescore'"), \
                batch._run_lock(out):
            pass


# --------------------------------------------------------------------------- chunked input


def _nothing_of_the_run_left(out: Path) -> None:
    assert not (out / "scores").exists() and not (out / "runs").exists()
    assert not (out / "history").exists()
    assert list((out / ".staging").glob("*")) == []  # no staged input, not even half of one


@pytest.mark.parametrize("batch_rows", [97, 10_000])
def test_a_bad_value_in_a_late_batch_is_named_and_nothing_is_kept(tmp_path, crm, batch_rows):
    from features.errors import DataValidationError
    from tests.serving.conftest import NOW

    leads, acts = crm
    leads = leads.copy()
    leads.loc[450, "company_size"] = -5.0
    data = _write_crm(leads, acts, tmp_path / "data")
    out = tmp_path / "out"
    with pytest.raises(DataValidationError) as caught:
        batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                      n_partitions=5, batch_rows=batch_rows)
    [issue] = caught.value.issues
    # Row of the whole file (not of its batch), the field, the value and what was expected.
    assert (issue.table, issue.field, issue.row, issue.value) == ("leads", "company_size",
                                                                  450, -5.0)
    assert issue.lead_id == leads.at[450, "lead_id"] and "is negative" in issue.expected
    _nothing_of_the_run_left(out)


def test_duplicates_and_orphan_activities_across_batches_are_named(tmp_path, crm):
    from features.errors import DataValidationError
    from tests.serving.conftest import NOW

    leads, acts = crm
    leads, acts = leads.copy(), acts.copy()
    # Rows 3 and 500 are in different batches: no batch sees both.
    leads.loc[500, "lead_id"] = leads.at[3, "lead_id"]
    orphan_row = len(acts) - 2
    acts.loc[orphan_row, "lead_id"] = "nobody"
    # The activities of the lead that was at row 500 now belong to no lead either.
    gone = crm[0].at[500, "lead_id"]
    data = _write_crm(leads, acts, tmp_path / "data")
    out = tmp_path / "out"
    with pytest.raises(DataValidationError) as caught:
        batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                      n_partitions=5, batch_rows=100)
    issues = caught.value.issues
    assert issues[0].table == "leads" and issues[0].row == 500
    assert issues[0].expected.startswith("is a duplicate of row 3;")
    orphans = {(i.value, i.row) for i in issues if i.table == "activities"}
    assert ("nobody", orphan_row) in orphans
    assert {v for v, _ in orphans} == {"nobody", gone}
    assert all("is not a known lead" in i.expected for i in issues if i.table == "activities")
    _nothing_of_the_run_left(out)


def test_small_batches_give_the_same_scores_and_bound_what_the_client_holds(
    tmp_path, crm, thread_client, monkeypatch
):
    import features.schema
    from tests.serving.conftest import NOW

    seen: list[int] = []
    for name in ("validate_leads", "validate_activities"):
        real = getattr(features.schema, name)

        def spy(frame: pd.DataFrame, *a: Any, _real: Any = real, **kw: Any) -> Any:
            seen.append(len(frame))
            return _real(frame, *a, **kw)

        monkeypatch.setattr(features.schema, name, spy)
    data = _write_crm(*crm, tmp_path / "data")
    runs = {}
    for rows in (53, 1_000_000):
        seen.clear()
        result = batch.rescore(data, tmp_path / f"out-{rows}", settings=_settings(), as_of=NOW,
                               source=_rules_only(), client=thread_client, n_partitions=5,
                               batch_rows=rows)
        assert result.leads_scored == len(crm[0])
        runs[rows] = _read(tmp_path / f"out-{rows}" / "scores").drop(columns="scored_at")
        if rows == 53:
            assert max(seen) <= 53 and sum(seen) == len(crm[0]) + len(crm[1])
    small, whole = (runs[r].sort_values("lead_id").reset_index(drop=True) for r in (53, 1_000_000))
    pd.testing.assert_frame_equal(small, whole)
    assert not list((tmp_path / "out-53" / ".staging").glob("*"))  # staged input removed


def test_an_input_split_cut_short_by_a_kill_is_discarded(tmp_path, crm, thread_client):
    from tests.serving.conftest import NOW

    data = _write_crm(*crm, tmp_path / "data")
    out = tmp_path / "out"
    partial = out / ".staging" / "input-0123456789abcdef.tmp-deadbeef" / "part-00000"
    partial.mkdir(parents=True)
    (partial / "leads.parquet").write_bytes(b"PAR1 cut short")
    result = batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                           client=thread_client, n_partitions=5)
    assert result.leads_scored == len(crm[0]) and _read(out / "scores")["lead_id"].is_unique
    assert list((out / ".staging").glob("*")) == []


# --------------------------------------------------------------------------- in process


def test_choose_engine_scores_small_bases_here_and_honours_overrides():
    settings = _settings(rescore_local_max_leads=10_000)
    assert batch.choose_engine("auto", 10_000, settings) == "local"
    assert batch.choose_engine("auto", 10_001, settings) == "dask"
    assert batch.choose_engine("auto", 5, _settings(rescore_local_max_leads=0)) == "dask"
    # A cluster someone gave is used, whatever the size.
    assert batch.choose_engine("auto", 5, settings, scheduler="tcp://h:8786") == "dask"
    assert batch.choose_engine("auto", 5, settings, client=object()) == "dask"
    assert batch.choose_engine("dask", 5, settings) == "dask"
    assert batch.choose_engine("local", 10**9, settings) == "local"
    with pytest.raises(ValueError, match="'engine' parameter of rescore is 'local' but a "
                       "cluster was given \\(tcp://h:8786\\)"):
        batch.choose_engine("local", 5, settings, scheduler="tcp://h:8786")
    with pytest.raises(ValueError, match="must be 'auto', 'local' or 'dask'. Got 'spark'"):
        batch.choose_engine("spark", 5, settings)


def _run_files(out: Path) -> dict[str, Any]:
    """What a committed run holds, less the moment it was scored at."""
    run = out / "scores"
    scores = _read(run).sort_values("lead_id").reset_index(drop=True)
    manifest = json.loads((run / "_manifest.json").read_text())
    history = _read(out / "history").sort_values("lead_id").reset_index(drop=True)
    return {"scores": scores.drop(columns="scored_at"),
            "health": json.loads((run / "_health.json").read_text()),
            "manifest": {k: v for k, v in manifest.items() if k != "scored_at"},
            "history": history.drop(columns=[c for c in history.columns if "scored_at" in c]),
            "files": sorted(p.name for p in run.iterdir())}


def test_in_process_and_dask_write_the_same_run(tmp_path, lead_model, thread_client):
    from tests.serving.conftest import NOW, make_crm

    leads, acts = make_crm(700, seed=5)
    # Cold starts (no activities) go to the rules: both paths of the core are compared.
    acts = acts[~acts["lead_id"].isin(leads["lead_id"].iloc[:40])].reset_index(drop=True)
    data = _write_crm(leads, acts, tmp_path / "data")
    settings = _settings(cold_start_policy="rules")
    source = ModelSource(_candidate("1"), settings, MemoryLoader(lead_model))
    runs, results = {}, {}
    for engine in ("local", "dask"):
        results[engine] = batch.rescore(
            data, tmp_path / engine, settings=settings, as_of=NOW, source=source,
            n_partitions=5, engine=engine, client=thread_client if engine == "dask" else None)
        runs[engine] = _run_files(tmp_path / engine)
    here, there = runs["local"], runs["dask"]
    assert (results["local"].engine, results["dask"].engine) == ("local", "dask")
    assert results["local"].run_id == results["dask"].run_id  # the engine is no identity
    scores = here["scores"]
    assert len(scores) == 700 and set(scores["scored_by"]) == {"model", "rules"}
    assert scores["reasons"].map(len).sum() > 0
    # Bit for bit: same probabilities, reasons (impacts included), grades, everything.
    pd.testing.assert_frame_equal(scores, there["scores"], check_exact=True)
    assert here["health"] == there["health"] and here["health"]["n_features"] > 0
    assert here["manifest"] == there["manifest"]
    pd.testing.assert_frame_equal(here["history"], there["history"], check_exact=True)
    assert here["files"] == there["files"]
    assert results["local"].grades == results["dask"].grades
    assert results["local"].by_source == results["dask"].by_source


def test_in_process_run_cut_short_resumes_on_dask(tmp_path, crm, thread_client, monkeypatch):
    """A full disk stops an in-process run at once; the rerun reuses what it wrote."""
    from tests.serving.conftest import NOW

    data = _write_crm(*crm, tmp_path / "data")
    out = tmp_path / "out"
    real = batch.pq.write_table
    monkeypatch.setattr(batch.pq, "write_table", disk_full_after(2, real))
    with pytest.raises(LeadscoreError, match="the device is full.*Nothing was committed"):
        batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                      n_partitions=6, engine="local")
    assert not (out / "scores").exists()
    assert len(list((out / ".staging").glob("*/scores/part-*"))) == 2
    monkeypatch.setattr(batch.pq, "write_table", real)
    result = batch.rescore(data, out, settings=_settings(), as_of=NOW, source=_rules_only(),
                           client=thread_client, n_partitions=6)
    assert result.engine == "dask" and result.partitions_skipped == 2
    assert _read(out / "scores")["lead_id"].is_unique and result.leads_scored == len(crm[0])


# --------------------------------------------------------------------------- real clusters


@pytest.fixture
def process_client():
    """A real LocalCluster: two worker processes, one thread each."""
    with batch.dask_client("local", workers=2, processes=True) as client:
        yield client


@pytest.mark.integration
def test_batch_equals_the_api_on_1000_leads_and_loads_once_per_worker(
    tmp_path, lead_model, registry, make_client, process_client
):
    from tests.serving.conftest import NOW, lead_payload, make_crm

    leads, acts = make_crm(1000, seed=11)
    # Cold starts too (no activities): the API and the batch must route them alike.
    acts = acts[~acts["lead_id"].isin(leads["lead_id"].iloc[:30])].reset_index(drop=True)
    registry.models["1"] = lead_model
    registry.champion = "1"
    # Cold starts go to the rules (policy "rules"), so both paths are compared.
    with make_client(cold_start_policy="rules") as client:
        body = {"leads": [lead_payload(leads, acts, i) for i in range(len(leads))],
                "as_of": NOW.isoformat(), "top_reasons": 3}
        response = client.post("/score", json=body)
    assert response.status_code == 200, response.text
    api = pd.DataFrame(response.json()["results"]).set_index("lead_id")

    data = _write_crm(leads, acts, tmp_path / "data")
    settings = _settings(cold_start_policy="rules")
    source = ModelSource(_candidate("1"), settings, MemoryLoader(lead_model))
    result = batch.rescore(data, tmp_path / "out", settings=settings, as_of=NOW,
                           source=source, client=process_client, n_partitions=8)
    loads = process_client.run(engine_loads)
    assert len(loads) == 2 and all(list(v.values()) == [1] for v in loads.values()), loads

    out = _read(tmp_path / "out" / "scores").set_index("lead_id").loc[api.index]
    assert result.leads_scored == 1000 and len(out) == 1000
    np.testing.assert_allclose(out["probability"], api["probability"], rtol=0, atol=1e-9)
    for column in ("score", "grade", "route", "scored_by", "model_name", "model_version",
                   "rules_version"):
        assert out[column].tolist() == api[column].tolist(), column
    assert out["fallback_reason"].fillna("-").tolist() == api["fallback_reason"].fillna("-").tolist()
    assert (pd.to_datetime(api["as_of"], utc=True) == NOW).all() and (out["as_of"] == NOW).all()
    assert set(out["scored_by"]) == {"model", "rules"}  # both paths were compared
    for lead_id in api.index:
        mine, theirs = list(out.at[lead_id, "reasons"]), api.at[lead_id, "reasons"]
        assert [(r["field"], r["label"], r["value"], r["sentence"]) for r in mine] == [
            (r["field"], r["label"], None if r["value"] is None else str(r["value"]),
             r["sentence"]) for r in theirs
        ], lead_id
        np.testing.assert_allclose([r["impact"] for r in mine],
                                   [r["impact"] for r in theirs], rtol=0, atol=1e-9)


# MLflow's model logging and SQLite store warn about their own internals (the pyfunc's
# Any type hint, SQLAlchemy's noload); not ours to fix, and warnings are errors here.
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Operation with range is deprecated")
@pytest.mark.integration
def test_cli_rescores_generated_data_then_shows_grade_movements(tmp_path, synthetic_dir,
                                                                 lead_model):
    from typer.testing import CliRunner

    from features.build import data_end
    from leadscore.cli import app
    from serving.score_history import lead_trend

    version = register_model(lead_model, tmp_path, experiment="batch-it", settings=_settings())
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(app, ["rescore", "--data", str(synthetic_dir), "--out", str(out),
                                "--workers", "2"])
    assert first.exit_code == 0, first.output
    assert "first run here" in first.output and f"lead-scoring v{version}" in first.output
    assert "in process" in first.output  # 3,000 leads: below the local threshold

    leads, acts = batch.read_inputs(synthetic_dir)
    end = data_end(leads, acts)
    expected = leads.loc[open_leads(leads, end), "lead_id"]
    scores = _read(out / "scores")
    assert sorted(scores["lead_id"]) == sorted(expected)  # one row per open lead
    model_rows = scores[scores["scored_by"] == "model"]
    assert len(model_rows) and all(len(r) > 0 for r in model_rows["reasons"])
    assert set(model_rows["model_version"]) == {version}

    # Drift: the partitions' counts, merged, are the counts of all model-scored leads.
    from features.drift import Reference
    from features.online import features_at

    health = json.loads((out / "scores" / "_health.json").read_text())
    assert "drift: score PSI" in " ".join(first.output.split())
    scored = model_rows.set_index("lead_id")
    mine = leads[leads["lead_id"].isin(scored.index)].reset_index(drop=True)
    X = features_at(mine, acts[acts["lead_id"].isin(scored.index)], end)
    reference = Reference.from_dict(lead_model.reference)
    direct = reference.report(reference.counts(X[lead_model.feature_names],
                                               scored.loc[X["lead_id"], "probability"].to_numpy()))
    assert health["n_features"] == len(lead_model.feature_names) == direct["n_features"]
    assert health["score_psi"] == pytest.approx(direct["score_psi"], abs=1e-12)
    assert {f["feature"]: round(f["psi"], 12) for f in health["features"]} == {
        f["feature"]: round(f["psi"], 12) for f in direct["features"]}
    # The label-free estimate: CBPE of exactly the model-scored leads' probabilities.
    from training.evaluate import expected_performance

    want = expected_performance(model_rows["probability"].to_numpy())
    got = health["estimate"]
    assert got["n"] == len(model_rows) and "calibration" in got["assumption"]
    for key in ("expected_conversion_rate", "expected_roc_auc", "expected_top_decile_lift"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    assert "expected (label-free, CBPE" in " ".join(first.output.split())

    later = (end + pd.Timedelta(days=21)).isoformat()
    second = runner.invoke(app, ["rescore", "--data", str(synthetic_dir), "--out", str(out),
                                 "--workers", "2", "--as-of", later, "--engine", "dask"])
    assert second.exit_code == 0, second.output
    assert "on Dask" in second.output
    assert "grade movements vs run" in second.output and " down," in second.output
    trend = lead_trend(out / "history", expected.iloc[:50].tolist())
    assert set(trend) == set(expected.iloc[:50]) and "declining" in trend.values()


# The rerun resolves the champion in MLflow's SQLite store (see the warnings above).
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
@pytest.mark.integration
def test_killed_run_restarts_without_duplicates(tmp_path, synthetic_dir):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from leadscore.cli import main; main()", "rescore",
               "--data", str(synthetic_dir), "--out", str(out), "--workers", "1",
               "--partitions", "60", "--engine", "dask"]
    # Its own session, so SIGKILL reaches the CLI, the nanny and the worker at once.
    proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = list(out.glob(".staging/*/scores/part-*.parquet"))
            if len(done) >= 3 or proc.poll() is not None:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    # Read and close the pipe here: left to the garbage collector, it raised a
    # ResourceWarning (an error under filterwarnings=error) inside a later test.
    with proc.stderr:
        stderr = proc.stderr.read().decode()[-2000:]
    assert proc.returncode == -signal.SIGKILL, stderr
    complete = list(out.glob(".staging/*/scores/part-*.parquet"))
    assert 3 <= len(complete) < 60
    assert not (out / "scores").exists()  # a reader sees no half run

    from typer.testing import CliRunner

    from leadscore.cli import app

    # Resumed in process (auto, a small base): the engine is not part of the run's identity.
    rerun = CliRunner().invoke(app, ["rescore", "--data", str(synthetic_dir), "--out",
                                     str(out), "--workers", "2", "--partitions", "60",
                                     "--json"])
    assert rerun.exit_code == 0, rerun.output
    import json

    summary = json.loads(rerun.stdout[rerun.stdout.index("{"):])
    assert summary["engine"] == "local"
    assert summary["partitions_skipped"] >= len(complete)
    scores = _read(out / "scores")
    assert scores["lead_id"].is_unique and len(scores) == summary["leads_scored"]
    assert not list((out / "runs").glob("*/.*tmp"))  # no leftover temporary files


DECAY_FIELDS = ("decay_7d_probability", "decay_7d_grade", "decay_14d_probability",
                "decay_14d_grade", "decay_30d_probability", "decay_30d_grade",
                "grade_drop_date", "grade_drop_grade")


def _flat_decay(decay: dict[str, Any] | None) -> dict[str, Any]:
    """The API's ``decay`` as the batch's columns."""
    points = {p["days"]: p for p in decay["points"]}
    drop = decay["grade_drop"]
    return {**{f"decay_{d}d_probability": points[d]["probability"] for d in (7, 14, 30)},
            **{f"decay_{d}d_grade": points[d]["grade"] for d in (7, 14, 30)},
            "grade_drop_date": None if drop is None else drop["date"],
            "grade_drop_grade": None if drop is None else drop["grade"]}


@pytest.mark.integration
def test_batch_decay_equals_the_api_on_both_engines_for_model_and_rules_leads(
    tmp_path, lead_model, registry, make_client, process_client
):
    """``rescore --decay`` writes the API's ``decay`` for every lead, in process and on a
    real LocalCluster, by what scored it: the model's leads by the model, the cold starts
    the rules answer by the rules (their inactivity rules lower a quiet lead)."""
    from serving.whatif import DECAY_COLUMNS
    from tests.serving.conftest import NOW, lead_payload, make_crm

    leads, acts = make_crm(240, seed=13)
    acts = acts[~acts["lead_id"].isin(leads["lead_id"].iloc[:25])].reset_index(drop=True)
    registry.models["1"] = lead_model
    registry.champion = "1"
    with make_client(cold_start_policy="rules") as client:
        body = {"leads": [lead_payload(leads, acts, i) for i in range(len(leads))],
                "as_of": NOW.isoformat(), "top_reasons": 0, "decay": True}
        response = client.post("/score", json=body)
    assert response.status_code == 200, response.text
    api = {r["lead_id"]: r for r in response.json()["results"]}
    assert {r["scored_by"] for r in api.values()} == {"model", "rules"}
    assert all(r["decay"] is not None for r in api.values())  # the rules' leads decay too
    # A quiet cold start loses points to the inactivity rules as it ages.
    assert any(r["decay"]["points"][-1]["probability"] < r["probability"]
               for r in api.values() if r["scored_by"] == "rules")

    data = _write_crm(leads, acts, tmp_path / "data")
    settings = _settings(cold_start_policy="rules")
    source = ModelSource(_candidate("1"), settings, MemoryLoader(lead_model))
    runs = {}
    for engine in ("local", "dask"):
        batch.rescore(data, tmp_path / engine, settings=settings, as_of=NOW, source=source,
                      n_partitions=3, engine=engine, top_reasons=0, decay=True,
                      client=process_client if engine == "dask" else None)
        runs[engine] = _read(tmp_path / engine / "scores").sort_values("lead_id")
    assert list(runs["local"].columns[-len(DECAY_COLUMNS):]) == list(DECAY_COLUMNS)
    pd.testing.assert_frame_equal(runs["local"].drop(columns="scored_at").reset_index(drop=True),
                                  runs["dask"].drop(columns="scored_at").reset_index(drop=True),
                                  check_exact=True)
    out = runs["local"].set_index("lead_id")
    assert len(out) == len(api)
    for lead_id, row in api.items():
        got, want = out.loc[lead_id], _flat_decay(row["decay"])
        for name in DECAY_FIELDS:
            if name.endswith("probability"):
                assert got[name] == pytest.approx(want[name], abs=1e-9), (lead_id, name)
            elif name == "grade_drop_date":
                assert (None if pd.isna(got[name]) else got[name].isoformat()) == want[name]
            else:
                assert (None if pd.isna(got[name]) else got[name]) == want[name], (lead_id, name)


def test_rescore_without_decay_writes_no_decay_columns_and_a_different_run(tmp_path, crm,
                                                                            lead_model):
    from serving.whatif import DECAY_COLUMNS
    from tests.serving.conftest import NOW

    data = _write_crm(*crm, tmp_path / "data")
    source = ModelSource(_candidate("1"), _settings(), MemoryLoader(lead_model))
    plain = batch.rescore(data, tmp_path / "a", settings=_settings(), as_of=NOW, source=source,
                          n_partitions=2, engine="local")
    decayed = batch.rescore(data, tmp_path / "b", settings=_settings(), as_of=NOW,
                            source=source, n_partitions=2, engine="local", decay=True)
    assert not set(DECAY_COLUMNS) & set(_read(tmp_path / "a" / "scores").columns)
    assert set(DECAY_COLUMNS) <= set(_read(tmp_path / "b" / "scores").columns)
    assert plain.run_id != decayed.run_id  # decay is part of the run's identity
