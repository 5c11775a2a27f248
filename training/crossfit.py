"""K-fold cross-fitting for small training sets: folds, and when to use them.

A lead-scoring export is usually small: a few thousand leads. With one validation
window of a thousand rows, early stopping picks the round count on noise (issue 4's
study: X Education stopped at 2 and 7 trees on two of five splits) and the calibrator
and grades are fitted on those same few rows. Below :data:`SMALL_DATA_ROWS` training
rows (train + validation), or with fewer than :data:`SMALL_DATA_VALID_POSITIVES`
converted validation rows, :meth:`training.model.LeadModel.fit_crossfit` instead:

- chooses the round count by K-fold cross-validation over train + validation
  (``lightgbm.cv`` with these folds, early stopping on the mean fold AUC);
- refits the booster on train + validation with that round count;
- fits the calibrator (isotonic or Platt, by cross-validated Brier) on the
  out-of-fold margins, and the grade thresholds on the out-of-fold probabilities.

The test window is not in the pool: nothing here sees it.

``leadscore train --crossfit auto`` (the default) cross-fits all small data: without
time on the stratified folds below, with time on lead-grouped folds over train +
validation. ``--crossfit forward`` asks for forward-chaining folds instead; see
:func:`training.pipeline.fit_model` for what each did on the examples.

Folds (:func:`crossfit_folds`):

- **without time**: stratified K-fold (``sklearn.model_selection.StratifiedKFold``),
  each row held out once;
- **grouped** (a time split's pool, the default): stratified K-fold that keeps every
  snapshot of a lead in one fold (``sklearn.model_selection.StratifiedGroupKFold``), so
  no fold model has seen the lead it scores. The folds ignore time *inside* the pool:
  a fold may fit on later snapshots than it holds out. The test window is still later
  than the whole pool and purged from it, so the test figure stays a forward one; the
  out-of-fold figure is the optimistic one (on OULAD, 0.79 out of fold for 0.69 on
  the test cohort a year later), and the run labels it as such (``cv_kind``);
- **forward**: forward chaining, as ``sklearn.model_selection.TimeSeriesSplit`` does,
  but on whole ``as_of`` values and with the purge of :func:`training.split.time_split`:
  the pool's distinct times are cut into ``n_splits + 1`` blocks of about equal rows;
  fold ``k`` holds out block ``k + 1`` and fits on the rows whose label was known before
  that block starts (``as_of + horizon``, or ``known_at``). Rows of block 0 are never
  held out (nothing earlier to fit on); rows whose label was not yet known are purged
  from that fold. A fold is dropped when its fit part has fewer than
  :data:`MIN_FIT_PER_CLASS` rows of a class or less than :data:`MIN_FIT_SHARE` of the
  pool, or its held part lacks a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

__all__ = ["CROSSFIT_MODES", "SMALL_DATA_ROWS", "SMALL_DATA_VALID_POSITIVES", "CV_FOLDS", "Fold", "Folds",
           "crossfit_folds", "is_small"]

CROSSFIT_MODES = ("auto", "always", "forward", "never")
"""``leadscore train --crossfit``: small data only (auto), any data, any data with
forward-chaining folds on a time split, or one validation window."""

SMALL_DATA_ROWS = 30_000
"""Cross-fit when train + validation hold fewer rows than this (X Education: 7,392;
OULAD's snapshots: about 3,500). Above it a validation window holds thousands of
positives and one early-stopping run is both stable and 5x cheaper."""

SMALL_DATA_VALID_POSITIVES = 300
"""Cross-fit also when the validation window holds fewer converted rows than this:
the calibrator and the grades would rest on too few positives."""

CV_FOLDS = 5


@dataclass(frozen=True)
class Fold:
    """Positions into the pool: rows to fit on, rows held out; the others are purged."""

    fit: np.ndarray
    held: np.ndarray


@dataclass(frozen=True)
class Folds:
    """The folds of one cross-fit and how they were made."""

    folds: tuple[Fold, ...]
    kind: str
    n_rows: int

    def __post_init__(self) -> None:
        held = np.concatenate([f.held for f in self.folds]) if self.folds else np.array([])
        if len(np.unique(held)) != len(held):
            raise ValueError("Folds: a row is held out by two folds")
        for f in self.folds:
            if np.intersect1d(f.fit, f.held).size:
                raise ValueError("Folds: a row is both fitted on and held out in one fold")

    @property
    def distinct_fits(self) -> int:
        """How many different fit parts the folds have. Forward folds over a time split's
        train + validation pool often all fit on the training window alone (the purge
        keeps every validation row out of every fit): they are then one window repeated,
        not a cross-validation."""
        return len({f.fit.tobytes() for f in self.folds})

    @property
    def usable(self) -> bool:
        """At least two folds, fitted on at least two different sets of rows."""
        return len(self.folds) >= 2 and self.distinct_fits >= 2

    @property
    def held_out(self) -> np.ndarray:
        """Pool positions that get an out-of-fold margin, sorted."""
        return np.sort(np.concatenate([f.held for f in self.folds]))

    def summary(self) -> dict[str, object]:
        return {"cv_kind": self.kind, "cv_folds": len(self.folds),
                "cv_fit_rows": ",".join(str(len(f.fit)) for f in self.folds),
                "cv_held_rows": ",".join(str(len(f.held)) for f in self.folds),
                # Pool rows no fold holds out (a forward fold's first block, a dropped
                # fold): they have no out-of-fold margin, so no say in the calibration.
                "cv_unheld_rows": self.n_rows - len(self.held_out)}


def is_small(n_pool_rows: int, valid_positives: int) -> bool:
    """Whether training should cross-fit (see :data:`SMALL_DATA_ROWS`)."""
    return n_pool_rows < SMALL_DATA_ROWS or valid_positives < SMALL_DATA_VALID_POSITIVES


MIN_FIT_PER_CLASS = 40
"""A forward fold fits on at least this many converted and unconverted rows (the
training minimum of :mod:`training.split`)."""

MIN_FIT_SHARE = 0.25
"""... and on at least this share of the pool. The earliest forward folds of a short
history fit on a few dozen rows; their held-out AUC curves are noise that stopped the
mean curve at 4 rounds on a 5,000-row CRM (test AUC 0.64 against 0.92 without them)."""


def _enough(y: np.ndarray, per_class: int) -> bool:
    return int(y.sum()) >= per_class and int(len(y) - y.sum()) >= per_class


def crossfit_folds(
    y: np.ndarray,
    *,
    time: pd.Series | np.ndarray | None = None,
    groups: pd.Series | np.ndarray | None = None,
    horizon: pd.Timedelta | None = None,
    known_at: pd.Series | np.ndarray | None = None,
    n_splits: int = CV_FOLDS,
    random_state: int = 0,
) -> Folds:
    """Stratified folds; lead-grouped ones with ``groups`` (a lead id per row); or
    forward-chaining purged folds when ``time`` is given.

    ``horizon`` (default none) is the purge gap when ``known_at`` is not given.
    """
    y = np.asarray(y, dtype=int)
    n = len(y)
    if time is not None and groups is not None:
        raise ValueError("crossfit_folds takes time (forward folds) or groups (lead-grouped "
                         "folds), not both.")
    if time is None:
        k = int(max(2, min(n_splits, y.sum(), n - y.sum())))
        if groups is not None:
            codes = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))[0]
            k = int(max(2, min(k, codes.max() + 1)))
            grouped = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
            folds = tuple(Fold(np.sort(a), np.sort(b))
                          for a, b in grouped.split(np.zeros(n), y, codes))
            return Folds(tuple(f for f in folds if _enough(y[f.held], 2)), "grouped", n)
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state)
        folds = tuple(Fold(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n), y))
        return Folds(folds, "stratified", n)
    t = pd.DatetimeIndex(pd.to_datetime(time, utc=True))
    horizon = pd.Timedelta(0) if horizon is None else pd.Timedelta(horizon)
    known = (t + horizon if known_at is None
             else pd.DatetimeIndex(pd.to_datetime(known_at, utc=True)))
    counts = pd.Series(1, index=t).groupby(level=0).size().sort_index()
    # Block of each distinct time: cut the cumulative row share into n_splits + 1 parts.
    share = counts.cumsum().to_numpy() / counts.sum()
    block_of_time = np.minimum((share * (n_splits + 1) - 1e-9).astype(int), n_splits)
    starts = pd.Series(counts.index).groupby(block_of_time).min()
    block = pd.Series(block_of_time, index=counts.index).reindex(t).to_numpy()
    folds = []
    for b, start in starts.items():
        if b == 0:
            continue
        held = np.flatnonzero(block == b)
        fit = np.flatnonzero(np.asarray(known < start))
        if _enough(y[fit], MIN_FIT_PER_CLASS) and _enough(y[held], 2) \
                and len(fit) >= MIN_FIT_SHARE * n:
            folds.append(Fold(fit, held))
    return Folds(tuple(folds), "forward", n)
