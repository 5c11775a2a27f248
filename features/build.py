"""The point-in-time training-set builder: one row per eligible (lead, as_of) snapshot.

Policies (each is tested in ``tests/features/test_build.py``):

- **Grid.** Snapshots are :func:`features.grid.snapshot_grid` points in
  ``(start, end]``, by default from the earliest ``created_at`` to the latest timestamp in
  the data, so training rows join the generator's ``truth.parquet`` on (lead_id, as_of).
- **Eligibility.** A lead is eligible at ``as_of`` when ``created_at < as_of`` and neither
  ``converted_at`` nor ``disqualified_at`` is before ``as_of`` (null, or ``>= as_of``).
  A lead that converts exactly at ``as_of`` was not converted *before* it, so it is
  eligible, and its label is 1.
- **Label.** 1 when ``as_of <= converted_at <= as_of + horizon`` (given eligibility this is
  "converted within the horizon after as_of"), else 0.
- **Censoring.** The data end is the latest timestamp in the data (any of ``created_at``,
  ``converted_at``, ``disqualified_at``, ``occurred_at``). A snapshot with
  ``as_of + horizon`` after it has a censored label: a 0 there means "not converted *yet*".
  ``censored="drop"`` (the default) leaves those snapshots out so that training never
  learns from censored negatives; ``censored="keep"`` keeps them and adds a boolean
  ``label_complete`` column right after ``label``.
- **Features** use only activities with ``occurred_at < as_of`` and never the outcome
  fields; they come from :mod:`features.functions`, the code the online path runs.

Rows are ordered by lead (the leads' order in the input table), then by ``as_of``: a lead's
snapshots are adjacent, which keeps every lookup into the sorted activities local.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from features.functions import HALF_LIVES, assemble, fill_features
from features.grid import DEFAULT_EVERY, DEFAULT_HORIZON, snapshot_grid
from features.history import PointInTime, index_activities
from features.registry import categorical_features, feature_names

__all__ = ["build_training_set", "data_end", "eligible_pairs"]

_NS = "datetime64[ns]"
_CHUNK_ROWS = 262_144


def _ns(values: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds, NaT as the int64 minimum."""
    return values.to_numpy(dtype=_NS).view(np.int64)


def data_end(leads: pd.DataFrame, activities: pd.DataFrame) -> pd.Timestamp:
    """The latest timestamp anywhere in the data: the end of what was observed."""
    candidates = [leads[c].max() for c in ("created_at", "converted_at", "disqualified_at")
                  if c in leads.columns]
    if len(activities):
        candidates.append(activities["occurred_at"].max())
    present = [pd.Timestamp(c) for c in candidates if pd.notna(c)]
    if not present:
        raise ValueError("The data has no timestamps; cannot place snapshots")
    return max(present)


def eligible_pairs(
    leads: pd.DataFrame, grid: pd.DatetimeIndex
) -> tuple[np.ndarray, np.ndarray]:
    """Every eligible (lead position, grid position) pair, ordered by lead then snapshot.

    A lead is eligible on the grid points in ``(created_at, min(converted_at,
    disqualified_at)]``, an interval, so two ``searchsorted`` calls per lead find them all.
    """
    points = grid.as_unit("ns").asi8
    created = _ns(leads["created_at"])
    stop = np.full(len(leads), np.iinfo(np.int64).max)
    for column in ("converted_at", "disqualified_at"):
        if column in leads.columns:
            at = leads[column]
            values = _ns(at)
            stop = np.where(at.notna().to_numpy(), np.minimum(stop, values), stop)
    first = np.searchsorted(points, created, side="right")  # first point > created_at
    last = np.searchsorted(points, stop, side="right")  # points <= the outcome
    counts = np.maximum(last - first, 0)
    lead_pos = np.repeat(np.arange(len(leads), dtype=np.int64), counts)
    # Offset of each row within its lead's run, added to the lead's first grid position.
    run_start = np.repeat(np.cumsum(counts) - counts, counts)
    grid_pos = np.repeat(first, counts) + (np.arange(counts.sum(), dtype=np.int64) - run_start)
    return lead_pos, grid_pos


def build_training_set(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    every: pd.Timedelta = DEFAULT_EVERY,
    horizon: pd.Timedelta = DEFAULT_HORIZON,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    censored: Literal["drop", "keep"] = "drop",
) -> pd.DataFrame:
    """Build the point-in-time training set.

    Parameters
    ----------
    leads, activities
        Tables already validated by :mod:`features.schema` (UTC timestamps, string ids).
    every
        Snapshot spacing; snapshots sit on :func:`features.grid.snapshot_grid`.
    horizon
        A snapshot's label is 1 when the lead converts within ``horizon`` after ``as_of``.
    start, end
        Snapshots fall in ``(start, end]``; by default from the earliest ``created_at`` to
        the latest timestamp in the data.
    censored
        ``"drop"`` (default) leaves out snapshots whose horizon runs past the end of the
        data; ``"keep"`` keeps them and adds a ``label_complete`` column after ``label``.

    Returns
    -------
    pandas.DataFrame
        ``lead_id`` (string), ``as_of`` (UTC), ``label`` (int64 0/1), [``label_complete``],
        then :func:`features.registry.feature_names` in order: ``float64`` numbers and
        ``string`` categories.
    """
    if not isinstance(every, pd.Timedelta) or every <= pd.Timedelta(0):
        raise ValueError(f"The 'every' parameter must be a positive Timedelta. Got {every!r} instead.")
    if not isinstance(horizon, pd.Timedelta) or horizon <= pd.Timedelta(0):
        raise ValueError(
            f"The 'horizon' parameter must be a positive Timedelta. Got {horizon!r} instead."
        )
    if censored not in ("drop", "keep"):
        raise ValueError(
            f"The 'censored' parameter must be 'drop' or 'keep'. Got {censored!r} instead."
        )
    leads = leads.reset_index(drop=True)
    observed_until = data_end(leads, activities)
    if start is None:
        start = leads["created_at"].min()
    if end is None:
        end = observed_until
    grid = snapshot_grid(pd.Timestamp(start), pd.Timestamp(end), every)
    complete = (grid + horizon) <= observed_until
    if censored == "drop":
        grid = grid[complete]
        complete = complete[complete]

    lead_pos, grid_pos = eligible_pairs(leads, grid)
    as_of = grid.as_unit("ns").asi8[grid_pos]

    converted = leads["converted_at"] if "converted_at" in leads.columns else None
    label = np.zeros(len(lead_pos), dtype=np.int64)
    if converted is not None:
        conv = _ns(converted)[lead_pos]
        has = converted.notna().to_numpy()[lead_pos]
        label = (has & (conv >= as_of) & (conv <= as_of + horizon.value)).astype(np.int64)

    index = index_activities(activities, leads["lead_id"], half_lives=HALF_LIVES)
    names = feature_names()
    categorical = set(categorical_features())
    block = np.empty((len(names) - len(categorical), len(lead_pos)), dtype=np.float64)
    parts: dict[str, list[pd.Series]] = {name: [] for name in names if name in categorical}
    cache: dict = {}
    # Chunks of consecutive rows are runs of consecutive leads (rows are lead-major), so
    # each chunk reads one small contiguous stretch of the activity index and its
    # temporaries stay in cache; the values do not depend on the chunking.
    for lo in range(0, max(len(lead_pos), 1), _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, len(lead_pos))
        pit = PointInTime(leads, index, lead_pos[lo:hi], as_of[lo:hi], lead_cache=cache)
        for name, column in fill_features(pit, names, categorical, block[:, lo:hi]).items():
            parts[name].append(column)
    strings = {
        name: pd.concat(columns, ignore_index=True).astype("string")
        for name, columns in parts.items()
    }
    values = assemble(names, categorical, strings, block)

    head: dict[str, object] = {
        "lead_id": leads["lead_id"].astype("string").take(lead_pos).reset_index(drop=True),
        "as_of": pd.DatetimeIndex(as_of.view(_NS)).tz_localize("UTC"),
        "label": label,
    }
    if censored == "keep":
        head["label_complete"] = np.asarray(complete)[grid_pos]
    return pd.concat([pd.DataFrame(head, index=values.index), values], axis=1)
