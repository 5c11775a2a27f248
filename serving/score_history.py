"""Score history: one slim row per lead per committed batch run, and each lead's trend.

Every committed ``leadscore rescore`` run appends ``<out>/history/run=<run_id>/part-0.parquet``
(and a copy of the run's ``_health.json``, which ``leadscore backtest`` reads)
(``run_id`` starts with the run's as_of, so directory order is time order). Rows hold
``lead_id``, ``as_of``, ``scored_at``, ``run_id``, ``probability``, ``score``, ``grade``,
``scored_by`` and ``model_version``, sorted by ``lead_id`` in row groups of
:data:`ROW_GROUP_SIZE`, so a lookup of one lead reads one small row group per run
(Parquet min/max statistics prune the others).

Trend (as Dynamics 365 shows it next to a lead's score)
-------------------------------------------------------
:func:`lead_trend` compares a lead's latest score with its score in the run before
(runs ordered by as_of, then scored_at):

- ``improving``: the score rose by at least ``threshold`` points (default 5 on the 0-100
  scale);
- ``declining``: it fell by at least ``threshold`` points;
- ``steady``: it moved less, or the lead has been scored only once.

A change of less than 5 points is within the week-to-week noise of a calibrated score
and of score decay, and a marketer should not read it as a change of direction. Leads
never scored have no trend (None), which is not the same as steady.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, overload

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

__all__ = ["Trend", "HISTORY_COLUMNS", "ROW_GROUP_SIZE", "append_history", "read_history",
           "lead_trend"]

Trend = Literal["improving", "steady", "declining"]

HISTORY_COLUMNS: tuple[str, ...] = (
    "lead_id", "as_of", "scored_at", "run_id", "probability", "score", "grade", "scored_by",
    "model_version",
)
ROW_GROUP_SIZE = 50_000
"""Rows per Parquet row group of a history file: the unit a one-lead lookup reads."""

DEFAULT_THRESHOLD = 5.0


def append_history(history_dir: str | Path, run_dir: str | Path) -> Path:
    """Add a committed run's slim rows to the history (idempotent: same run, same file).

    Written to a temporary name and renamed, so a reader sees the run whole or not at all.
    """
    history_dir = Path(history_dir)
    table = pq.read_table(run_dir, columns=list(HISTORY_COLUMNS))
    table = table.sort_by("lead_id")
    run_id = table["run_id"][0].as_py() if table.num_rows else Path(run_dir).name
    where = history_dir / f"run={run_id}"
    where.mkdir(parents=True, exist_ok=True)
    target = where / "part-0.parquet"
    tmp = where / f".part-0.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # The run's drift and label-free estimate stay with its rows: the run itself is
    # pruned after two more, and a backtest compares the estimate made then with what
    # followed (underscored: Parquet readers of the history skip it).
    health = Path(run_dir) / "_health.json"
    if health.is_file():
        tmp = where / f"._health.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_bytes(health.read_bytes())
            os.replace(tmp, where / "_health.json")
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    return target


def read_history(history_dir: str | Path, lead_ids: Sequence[str] | None = None,
                 columns: Sequence[str] | None = None) -> pd.DataFrame:
    """History rows (all, or of ``lead_ids`` only, read with a Parquet filter)."""
    history_dir = Path(history_dir)
    wanted = list(columns or HISTORY_COLUMNS)
    if not history_dir.is_dir():
        return pd.DataFrame({c: [] for c in wanted})
    dataset = ds.dataset(history_dir, format="parquet")
    filt = None if lead_ids is None else pc.field("lead_id").isin(pa.array(list(lead_ids),
                                                                          type=pa.string()))
    return dataset.to_table(columns=wanted, filter=filt).to_pandas()


@overload
def lead_trend(history: str | Path, lead_ids: str, *, threshold: float = ...) -> Trend | None:
    ...


@overload
def lead_trend(history: str | Path, lead_ids: Sequence[str], *, threshold: float = ...
               ) -> dict[str, Trend]:
    ...


def lead_trend(history: str | Path, lead_ids: str | Sequence[str], *,
               threshold: float = DEFAULT_THRESHOLD) -> Trend | None | dict[str, Trend]:
    """The score trend of one lead or several, from the batch score history.

    Parameters
    ----------
    history : path
        The history dataset (``<out>/history``).
    lead_ids : str or sequence of str
        One lead id, or several.
    threshold : float, default 5.0
        Score points (0-100) the latest score must move from the previous run's to count
        as improving or declining.

    Returns
    -------
    str or None, or dict
        For one id: ``"improving"``, ``"steady"`` or ``"declining"``, or None when the
        lead was never scored by a batch run. For several: a dict with an entry for each
        lead that has history.
    """
    single = isinstance(lead_ids, str)
    ids = [lead_ids] if single else list(lead_ids)
    rows = read_history(history, ids, columns=("lead_id", "as_of", "scored_at", "score"))
    trends = trends_of(rows, threshold=threshold)
    if single:
        return trends.get(lead_ids)  # type: ignore[arg-type]
    return trends


def trends_of(rows: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Trend]:
    """Trend per lead from history rows (``lead_id``, ``as_of``, ``scored_at``, ``score``)."""
    if rows.empty:
        return {}
    ordered = rows.sort_values(["lead_id", "as_of", "scored_at"], kind="stable")
    last_two = ordered.groupby("lead_id", sort=False).tail(2)
    out: dict[str, Trend] = {}
    for lead_id, group in last_two.groupby("lead_id", sort=False):
        scores = group["score"].to_numpy(dtype=float)
        change = scores[-1] - scores[0] if len(scores) == 2 else 0.0
        out[str(lead_id)] = ("improving" if change >= threshold
                             else "declining" if change <= -threshold else "steady")
    return out
