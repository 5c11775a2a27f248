"""Train / validation / test splits, and the minimum-data checks that guard them.

**Time split** (:func:`time_split`, the default for snapshot training sets): rows are
ordered by ``as_of``; the latest ~``test_frac`` of rows test, the ~``valid_frac`` before
them validate, the earliest train. Every boundary is a whole ``as_of`` value, so the
snapshots of one date never straddle two splits: all rows that share a time go to one
part (or are all purged), and every row is in exactly one part or purged, whatever the
gap (also none, as for a spec without a horizon, where ties at a boundary once went to
both sides).

*Purge gap.* A row's label looks ``horizon`` ahead of its ``as_of`` ("converted within
90 days"). A training row at ``as_of = t`` therefore knows what happened up to
``t + horizon``. To stop training labels from seeing outcomes inside the validation
window (and validation labels inside the test window), rows whose label window runs
past the next split's start are purged. A label window is closed at both ends
(``as_of <= converted_at <= as_of + horizon``), so it must end strictly before the next
part begins:

- train:       ``as_of + horizon < valid_start``
- validation:  ``valid_start <= as_of`` and ``as_of + horizon < test_start``
- test:        ``as_of >= test_start``

*One lead on both sides.* A lead may have snapshots in train and in test (it was open
at both dates); that is what the model faces in production, where it scores leads it
saw as open earlier. The gap guarantees its *training* labels only describe what
happened before the validation window begins: if it converts in the test window, its
training rows are labelled 0 because their horizon ended earlier. No lead identity is
a feature, so the model cannot memorise a lead.

**Random split** (:func:`random_split`): for dataset specs without timestamps (e.g. the
X Education export), a stratified random 60/20/20 split. It is the only option when
there is no time, and it is optimistic compared to a time split: document figures from
it as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from features.errors import InsufficientDataError

__all__ = ["Split", "time_split", "random_split", "check_min_data", "MIN_PER_CLASS"]

MIN_PER_CLASS = 40
"""Fewest converted and fewest unconverted examples to train on (Dynamics 365 Sales
uses the same threshold)."""


@dataclass(frozen=True)
class Split:
    """Row positions of each part out of ``n_rows``, how they were chosen, what was dropped.

    Built only with parts that are disjoint and inside ``range(n_rows)``, so that
    ``n_train + n_valid + n_test + n_purged == n_rows`` and no count is negative.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    kind: str
    n_rows: int
    boundaries: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = np.concatenate([self.train, self.valid, self.test]).astype(np.int64)
        if len(parts) and (parts.min() < 0 or parts.max() >= self.n_rows):
            raise ValueError(f"Split: a row position is outside 0..{self.n_rows - 1}")
        if len(np.unique(parts)) != len(parts):
            raise ValueError("Split: a row is in two parts (or twice in one)")

    @property
    def purged(self) -> int:
        """Rows in no part: label windows that would overlap the next part."""
        return self.n_rows - len(self.train) - len(self.valid) - len(self.test)

    def summary(self) -> dict[str, object]:
        return {
            "split": self.kind,
            "n_train": len(self.train),
            "n_valid": len(self.valid),
            "n_test": len(self.test),
            "n_purged": self.purged,
            **self.boundaries,
        }


def check_min_data(y: np.ndarray, min_per_class: int = MIN_PER_CLASS) -> None:
    """Refuse to train on fewer than ``min_per_class`` converted or unconverted rows."""
    y = np.asarray(y)
    pos = int((y == 1).sum())
    neg = int((y == 0).sum())
    if pos < min_per_class or neg < min_per_class:
        raise InsufficientDataError(
            f"Training needs at least {min_per_class} converted and {min_per_class} "
            f"unconverted examples; got {pos} converted and {neg} unconverted. Add more "
            "history (a longer time range or more leads) before training a model; until "
            "then the rules fallback scores leads."
        )


def _check_parts(split: Split, y: np.ndarray, what: str) -> Split:
    for name in ("train", "valid", "test"):
        part = y[getattr(split, name)]
        if len(part) == 0 or part.min() == part.max():
            raise InsufficientDataError(
                f"The {what} leaves the {name} part "
                f"{'empty' if len(part) == 0 else 'with a single class'} "
                f"({split.summary()}). {_HINT[split.kind]}"
            )
    return split


_HINT = {
    "time": "The time range is too short to split: it must cover the training, "
    "validation and test windows plus two purge gaps of one horizon each. Provide "
    "a longer history or a shorter --horizon.",
    "random": "Provide more rows of each class.",
}


def time_split(
    as_of: pd.Series | np.ndarray,
    y: np.ndarray,
    *,
    horizon: pd.Timedelta,
    valid_frac: float = 0.2,
    test_frac: float = 0.2,
    known_at: pd.Series | np.ndarray | None = None,
    valid_from: pd.Timestamp | None = None,
    test_from: pd.Timestamp | None = None,
) -> Split:
    """Split rows by ``as_of`` with a purge gap of ``horizon`` before validation and test.

    ``valid_from`` and ``test_from`` (UTC) fix where validation and test start instead
    of the row shares: the way to hold out a whole cohort (the latest presentation of a
    course, last quarter's leads). Rows before ``valid_from`` whose labels reach into it
    are purged as usual.

    ``known_at`` (optional, one UTC time per row, never before its ``as_of``) is when
    each row's label became known: ``as_of + horizon`` unless the outcome settled it
    earlier (the lead converted, or was disqualified, within the horizon). Given, a row
    is purged when its label was known only at or after the next part's start, rather
    than whenever its whole horizon overlaps it: data whose every lead reaches an
    outcome (a course that ends, a deal that closes) keeps the rows that are honest.
    """
    if not (0 < valid_frac < 1 and 0 < test_frac < 1 and valid_frac + test_frac < 1):
        raise ValueError(
            "The 'valid_frac' and 'test_frac' parameters of time_split must be in (0, 1) "
            f"with a sum below 1. Got {valid_frac} and {test_frac} instead."
        )
    t = pd.DatetimeIndex(pd.to_datetime(as_of, utc=True))
    y = np.asarray(y)
    horizon = pd.Timedelta(horizon)
    if horizon < pd.Timedelta(0):
        raise ValueError(
            "The 'horizon' parameter of time_split must be a Timedelta of zero or more. "
            f"Got {horizon!r} instead."
        )

    def start_of_last(mask: np.ndarray, frac: float) -> pd.Timestamp | None:
        """Latest as_of such that rows at or after it are at least ``frac`` of ``mask``."""
        times = t[mask]
        if len(times) == 0:
            return None
        counts = pd.Series(1, index=times).groupby(level=0).size().sort_index()
        share_from = counts[::-1].cumsum()[::-1] / counts.sum()
        eligible = share_from[share_from >= frac]
        # At least two distinct dates are needed for the earlier part to exist at all.
        return eligible.index.max() if len(counts) > 1 else None

    everything = np.ones(len(t), dtype=bool)
    fixed = {"valid_from": valid_from, "test_from": test_from}
    for name, value in fixed.items():
        if value is not None and pd.Timestamp(value).tzinfo is None:
            raise ValueError(f"The '{name}' parameter of time_split must be a UTC timestamp. "
                             f"Got the naive {value!r} instead.")
    if valid_from is not None and test_from is not None and valid_from >= test_from:
        raise ValueError("The 'valid_from' parameter of time_split must be before 'test_from'. "
                         f"Got {valid_from} and {test_from} instead.")
    test_start = (pd.Timestamp(test_from) if test_from is not None
                  else start_of_last(everything, test_frac))
    if test_start is None:
        raise InsufficientDataError(
            f"The training set has a single snapshot date; {_HINT['time']}"
        )
    known = t + horizon
    if known_at is not None:
        known = pd.DatetimeIndex(pd.to_datetime(known_at, utc=True))
        if len(known) != len(t) or bool((known < t).any()) or bool(known.isna().any()):
            raise ValueError(
                "The 'known_at' parameter of time_split must give one time per row, none "
                "missing and none before its as_of."
            )
    # Strict: with no gap, rows *at* test_start are test rows and nothing else.
    before_test = np.asarray(known < test_start)
    valid_start = (pd.Timestamp(valid_from) if valid_from is not None
                   else start_of_last(before_test, valid_frac / (1 - test_frac)))
    if valid_start is None:
        raise InsufficientDataError(
            f"Rows span {t.min()} to {t.max()}, too little to hold validation rows one "
            f"horizon ({horizon}) before the test window starting {test_start}. {_HINT['time']}"
        )
    train = np.flatnonzero(known < valid_start)
    valid = np.flatnonzero((t >= valid_start) & before_test)
    test = np.flatnonzero(t >= test_start)
    split = Split(
        train=train,
        valid=valid,
        test=test,
        kind="time",
        n_rows=len(t),
        boundaries={
            "train_start": _iso(t[train].min()) if len(train) else "",
            "train_end": _iso(t[train].max()) if len(train) else "",
            "valid_start": _iso(valid_start),
            "valid_end": _iso(t[valid].max()) if len(valid) else "",
            "test_start": _iso(test_start),
            "test_end": _iso(t.max()),
            "purge_gap": str(horizon) if known_at is None else f"label known ({horizon} at most)",
        },
    )
    return _check_parts(split, y, "time split")


def random_split(
    y: np.ndarray, *, valid_frac: float = 0.2, test_frac: float = 0.2, random_state: int = 0
) -> Split:
    """Stratified random train/valid/test split: the fallback when rows have no time."""
    y = np.asarray(y)
    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(
            idx, test_size=test_frac, stratify=y, random_state=random_state
        )
        train, valid = train_test_split(
            rest, test_size=valid_frac / (1 - test_frac), stratify=y[rest],
            random_state=random_state,
        )
    except ValueError as exc:  # a class too small to stratify
        raise InsufficientDataError(f"Cannot split {len(y)} rows by class: {exc}") from exc
    split = Split(
        train=np.sort(train), valid=np.sort(valid), test=np.sort(test), kind="random",
        n_rows=len(y),
        boundaries={"split_fractions": f"{1 - valid_frac - test_frac:.2f}/{valid_frac:.2f}/"
                    f"{test_frac:.2f}", "stratified": "true", "split_seed": str(random_state)},
    )
    return _check_parts(split, y, "random split")


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat()
