"""The snapshot grid shared by the training-set builder and the generator's ground truth.

Snapshots fall on fixed multiples of ``every`` counted from an anchor (Monday
1970-01-05 00:00 UTC), so that a training set and ``truth.parquet`` built from the
same data join exactly on (``lead_id``, ``as_of``) whatever their date ranges.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["GRID_ANCHOR", "DEFAULT_EVERY", "DEFAULT_HORIZON", "snapshot_grid"]

GRID_ANCHOR = pd.Timestamp("1970-01-05T00:00:00Z")
DEFAULT_EVERY = pd.Timedelta(days=7)
DEFAULT_HORIZON = pd.Timedelta(days=90)


def snapshot_grid(
    start: pd.Timestamp, end: pd.Timestamp, every: pd.Timedelta = DEFAULT_EVERY
) -> pd.DatetimeIndex:
    """Grid points ``t`` with ``start < t <= end``, UTC, on multiples of ``every`` from the anchor."""
    if every <= pd.Timedelta(0):
        raise ValueError(f"every must be a positive duration; got {every}")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    first = GRID_ANCHOR + ((start - GRID_ANCHOR) // every + 1) * every
    if first > end:
        return pd.DatetimeIndex([], tz="UTC", name="as_of")
    count = int((end - first) // every) + 1
    return pd.DatetimeIndex([first + i * every for i in range(count)], name="as_of").as_unit("ns")
