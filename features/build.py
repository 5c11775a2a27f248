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
  ``censored="resolved"`` keeps, besides, the snapshots whose outcome was already known
  at the end of the data (the lead converted or was disqualified by then, within the
  horizon): right for data whose every lead reaches an outcome (a course ends, a
  deal closes), which would otherwise lose its latest cohort.
- **Snapshots per lead.** Instead of the grid, ``snapshots=(column, offsets)`` places
  one snapshot per lead at each ``leads[column] + offset`` (e.g. 30 and 60 days after a
  course starts), with the same eligibility, label and censoring.
- **Features** use only activities with ``occurred_at < as_of`` and never the outcome
  fields; they come from the feature set's functions (:mod:`features.functions`), the
  code the online path runs. The built-in feature set is the default; a dataset spec
  brings its own (:class:`features.registry.FeatureSet`).

Rows are ordered by lead (the leads' order in the input table), then by ``as_of``: a lead's
snapshots are adjacent, which keeps every lookup into the sorted activities local.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from features.functions import HALF_LIVES, assemble, fill_features
from features.grid import DEFAULT_EVERY, DEFAULT_HORIZON, snapshot_grid
from features.history import PointInTime, index_activities
from features.registry import BUILTIN, FeatureSet

__all__ = ["build_training_set", "data_end", "eligible_pairs", "anchored_pairs"]

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


def anchored_pairs(
    leads: pd.DataFrame, column: str, offsets: Sequence[pd.Timedelta]
) -> tuple[np.ndarray, np.ndarray]:
    """Eligible (lead position, as_of ns) pairs at ``leads[column] + offset``, lead-major.

    A lead whose anchor is missing has no snapshot; eligibility is the grid's:
    created before as_of, neither converted nor disqualified before it.
    """
    if column not in leads.columns:
        raise ValueError(
            f"The snapshot anchor {column!r} is not a column of the leads table; expected one "
            f"of {list(leads.columns)}."
        )
    offsets = sorted(pd.Timedelta(o) for o in offsets)
    anchor = _ns(leads[column])
    present = leads[column].notna().to_numpy()
    n = len(leads)
    lead_pos = np.repeat(np.arange(n, dtype=np.int64), len(offsets))
    as_of = (anchor[:, None] + np.array([o.value for o in offsets], dtype=np.int64)[None, :]).ravel()
    keep = np.repeat(present, len(offsets)) & (_ns(leads["created_at"])[lead_pos] < as_of)
    for outcome in ("converted_at", "disqualified_at"):
        if outcome in leads.columns:
            at = leads[outcome]
            happened = at.notna().to_numpy()[lead_pos]
            keep &= ~(happened & (_ns(at)[lead_pos] < as_of))
    return lead_pos[keep], as_of[keep]


def build_training_set(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    every: pd.Timedelta = DEFAULT_EVERY,
    horizon: pd.Timedelta = DEFAULT_HORIZON,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    censored: Literal["drop", "keep", "resolved"] = "drop",
    feature_set: FeatureSet = BUILTIN,
    snapshots: tuple[str, Sequence[pd.Timedelta]] | None = None,
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
        data; ``"keep"`` keeps them and adds a ``label_complete`` column after ``label``;
        ``"resolved"`` leaves out only those whose outcome was still open at the end.
    feature_set
        The features to compute (default: the built-in contract's).
    snapshots
        ``(column, offsets)``: one snapshot per lead at ``leads[column] + offset`` for each
        offset, instead of the grid (``every``, ``start`` and ``end`` are then unused).

    Returns
    -------
    pandas.DataFrame
        ``lead_id`` (string), ``as_of`` (UTC), ``label`` (int64 0/1), [``label_complete``],
        then ``feature_set.feature_names()`` in order: ``float64`` numbers and ``string``
        categories.
    """
    if not isinstance(every, pd.Timedelta) or every <= pd.Timedelta(0):
        raise ValueError(f"The 'every' parameter must be a positive Timedelta. Got {every!r} instead.")
    if not isinstance(horizon, pd.Timedelta) or horizon <= pd.Timedelta(0):
        raise ValueError(
            f"The 'horizon' parameter must be a positive Timedelta. Got {horizon!r} instead."
        )
    if censored not in ("drop", "keep", "resolved"):
        raise ValueError(
            "The 'censored' parameter must be 'drop', 'keep' or 'resolved'. "
            f"Got {censored!r} instead."
        )
    leads = leads.reset_index(drop=True)
    observed_until = data_end(leads, activities)
    if snapshots is None:
        if start is None:
            start = leads["created_at"].min()
        if end is None:
            end = observed_until
        grid = snapshot_grid(pd.Timestamp(start), pd.Timestamp(end), every)
        lead_pos, grid_pos = eligible_pairs(leads, grid)
        as_of = grid.as_unit("ns").asi8[grid_pos]
    else:
        lead_pos, as_of = anchored_pairs(leads, *snapshots)
    complete = as_of + horizon.value <= observed_until.value

    converted = leads["converted_at"] if "converted_at" in leads.columns else None
    label = np.zeros(len(lead_pos), dtype=np.int64)
    if converted is not None:
        conv = _ns(converted)[lead_pos]
        has = converted.notna().to_numpy()[lead_pos]
        label = (has & (conv >= as_of) & (conv <= as_of + horizon.value)).astype(np.int64)
    if censored == "resolved":
        # The label is settled once the lead converted within the horizon (a 1), or was
        # disqualified within it and never converted afterwards (a 0 for good), by the
        # end of the data: it cannot change after that.
        never = np.iinfo(np.int64).max
        end = as_of + horizon.value
        conv = (_ns(converted)[lead_pos] if converted is not None
                else np.full(len(lead_pos), never))
        has_conv = (converted.notna().to_numpy()[lead_pos] if converted is not None
                    else np.zeros(len(lead_pos), bool))
        settled = np.where(has_conv & (conv >= as_of) & (conv <= end), conv, never)
        if "disqualified_at" in leads.columns:
            dq_at = leads["disqualified_at"]
            dq = _ns(dq_at)[lead_pos]
            lost = (dq_at.notna().to_numpy()[lead_pos] & (dq >= as_of) & (dq < end)
                    & ~(has_conv & (conv > dq)))
            settled = np.where(lost, np.minimum(settled, dq), settled)
        complete |= (settled != never) & (settled <= observed_until.value)
    if censored != "keep":
        lead_pos, as_of, label = lead_pos[complete], as_of[complete], label[complete]
        complete = complete[complete]

    index = index_activities(activities, leads["lead_id"], half_lives=HALF_LIVES,
                             vocabulary=feature_set.vocabulary)
    names = feature_set.feature_names()
    categorical = set(feature_set.categorical_features())
    block = np.empty((len(names) - len(categorical), len(lead_pos)), dtype=np.float64)
    parts: dict[str, list[pd.Series]] = {name: [] for name in names if name in categorical}
    cache: dict = {}
    # Chunks of consecutive rows are runs of consecutive leads (rows are lead-major), so
    # each chunk reads one small contiguous stretch of the activity index and its
    # temporaries stay in cache; the values do not depend on the chunking.
    for lo in range(0, max(len(lead_pos), 1), _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, len(lead_pos))
        pit = PointInTime(leads, index, lead_pos[lo:hi], as_of[lo:hi], lead_cache=cache)
        filled = fill_features(pit, names, categorical, block[:, lo:hi], feature_set.functions)
        for name, column in filled.items():
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
        head["label_complete"] = np.asarray(complete)
    return pd.concat([pd.DataFrame(head, index=values.index), values], axis=1)
