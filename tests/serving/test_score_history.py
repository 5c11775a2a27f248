"""Score history: append is idempotent and atomic; trends follow the documented rule."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.score_history import (
    ROW_GROUP_SIZE,
    append_history,
    lead_trend,
    read_history,
    trends_of,
)

T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def _run(root, run_id: str, as_of: pd.Timestamp, scores: dict[str, int]):
    """A committed run's directory (the history columns of the batch output)."""
    where = root / "runs" / run_id
    where.mkdir(parents=True)
    ts = pa.timestamp("us", tz="UTC")
    n = len(scores)
    table = pa.table({
        "lead_id": pa.array(list(scores), pa.string()),
        "as_of": pa.array([as_of.as_unit("us")] * n, ts),
        "scored_at": pa.array([as_of.as_unit("us")] * n, ts),
        "run_id": pa.array([run_id] * n, pa.string()),
        "probability": pa.array([s / 100 for s in scores.values()], pa.float64()),
        "score": pa.array(list(scores.values()), pa.int16()),
        "grade": pa.array(["C"] * n, pa.string()),
        "scored_by": pa.array(["model"] * n, pa.string()),
        "model_version": pa.array(["1"] * n, pa.string()),
        "reasons": pa.array([[]] * n, pa.list_(pa.struct([("field", pa.string())]))),
    })
    pq.write_table(table, where / "part-00000.parquet")
    return where


@pytest.fixture
def history(tmp_path):
    root = tmp_path / "out"
    runs = [
        ("20260301T000000Z-a", T0, {"up": 20, "down": 60, "flat": 40, "once": 10}),
        ("20260308T000000Z-b", T0 + pd.Timedelta(days=7), {"up": 30, "down": 50, "flat": 43}),
        ("20260315T000000Z-c", T0 + pd.Timedelta(days=14), {"up": 36, "down": 44, "flat": 41,
                                                             "new": 70}),
    ]
    for run_id, as_of, scores in runs:
        append_history(root / "history", _run(root, run_id, as_of, scores))
    return root / "history"


def test_trend_compares_the_latest_score_with_the_previous_run(history):
    trends = lead_trend(history, ["up", "down", "flat", "once", "new", "never"])
    # up: 30 -> 36 (+6); down: 50 -> 44 (-6); flat: 43 -> 41 (-2, within 5 points);
    # once: scored once, long ago; new: scored once. "never" has no history.
    assert trends == {"up": "improving", "down": "declining", "flat": "steady",
                      "once": "steady", "new": "steady"}
    assert lead_trend(history, "up") == "improving"
    assert lead_trend(history, "never") is None
    assert lead_trend(history, "flat", threshold=2) == "declining"


def test_trend_orders_runs_by_as_of_not_by_file_order():
    rows = pd.DataFrame({
        "lead_id": ["x", "x"],
        "as_of": [T0 + pd.Timedelta(days=7), T0],  # the later run is listed first
        "scored_at": [T0, T0],
        "score": [80, 50],
    })
    assert trends_of(rows) == {"x": "improving"}


def test_append_is_idempotent_and_sorted_for_cheap_lookups(tmp_path, history):
    root = history.parent
    append_history(history, root / "runs" / "20260315T000000Z-c")  # again: same file
    rows = read_history(history)
    assert len(rows) == 4 + 3 + 4
    one = pq.ParquetFile(next(history.glob("run=20260315T000000Z-c/*.parquet")))
    assert one.metadata.row_group(0).num_rows <= ROW_GROUP_SIZE
    ids = one.read(columns=["lead_id"]).column("lead_id").to_pylist()
    assert ids == sorted(ids)
    assert not list(history.rglob(".*tmp"))


def test_history_of_an_empty_location_is_empty(tmp_path):
    assert read_history(tmp_path / "nothing").empty
    assert lead_trend(tmp_path / "nothing", ["a"]) == {}
