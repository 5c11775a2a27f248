"""Fit and engagement: one model's score split into two parts that add up to it.

Every feature belongs to a group (:attr:`features.registry.Feature.group`): *fit*, who
the lead is (its own fields, its age), or *engagement*, what it did (everything counted
from the activity log; a spec may move a lead column there, e.g. a flat export's
pre-counted visits). The model's exact TreeSHAP contributions are summed per group::

    base value + fit part + engagement part == raw margin      (log-odds, exactly)

because the per-feature contributions already sum to the margin. Interactions are split
the Shapley way: TreeSHAP gives each feature its share of every interaction it takes part
in (for two features, half each), so an interaction between a fit and an engagement
feature is shared between the two parts, and one inside a group stays in it. Nothing is
left over and nothing counts twice.

The parts are in log-odds of the raw (pre-calibration) margin. What a marketer reads is
each part's 0-100 *score*: its percentile among the training leads (the training rows'
parts, fitted once at training time on training rows only and shipped with the model as
:class:`FitEngagement`), and a *level*, ``high`` at or above the group's threshold
(default 50: above the median training lead), else ``low``. The two levels give the
route of the fit x engagement matrix (:data:`ROUTES`):

==============  ==================  =================
                engagement high     engagement low
==============  ==================  =================
fit high        sales               targeted_nurture
fit low         review              recycle
==============  ==================  =================

Thresholds ship with the model and an operator may override them
(``LEADSCORE_FIT_THRESHOLD``, ``LEADSCORE_ENGAGEMENT_THRESHOLD``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["FitEngagement", "Thresholds", "ROUTES", "DEFAULT_THRESHOLD", "route_of",
           "QUANTILES", "part_dict"]

ROUTES: tuple[str, ...] = ("sales", "targeted_nurture", "review", "recycle")
"""The fit x engagement matrix's routes: (high, high), (high, low), (low, high), (low, low)."""

DEFAULT_THRESHOLD = 50.0
"""A part is ``high`` at or above this 0-100 score (the median training lead) by default."""

QUANTILES = 201
"""Points of each part's training distribution shipped with the model (every 0.5%)."""


@dataclass(frozen=True)
class Thresholds:
    """The 0-100 scores at which fit and engagement count as ``high``.

    ``None`` for either means "what the model shipped" (or :data:`DEFAULT_THRESHOLD`).
    """

    fit: float | None = None
    engagement: float | None = None

    def __post_init__(self) -> None:
        for name in ("fit", "engagement"):
            value = getattr(self, name)
            if value is not None and not 0 <= float(value) <= 100:
                raise ValueError(f"The '{name}' threshold must be a score from 0 to 100. "
                                 f"Got {value!r} instead.")


def route_of(fit_high: np.ndarray, engagement_high: np.ndarray) -> np.ndarray:
    """The matrix route per lead from its two levels (booleans: high or not)."""
    fit_high = np.asarray(fit_high, dtype=bool)
    engagement_high = np.asarray(engagement_high, dtype=bool)
    return np.where(fit_high, np.where(engagement_high, "sales", "targeted_nurture"),
                    np.where(engagement_high, "review", "recycle"))


def part_dict(score: float | None, level: str | None, part: float) -> dict[str, Any]:
    """One part as the API answers it."""
    return {"score": None if score is None else int(score), "level": level,
            "part": float(part)}


@dataclass(frozen=True)
class FitEngagement:
    """A model's fit/engagement split: feature groups, training distributions, thresholds.

    Parameters
    ----------
    groups : mapping of feature name to "fit" or "engagement"
        The group of every model input, in the model's feature order.
    quantiles : mapping of group to a sorted tuple of floats
        Each part's distribution on the training rows (:data:`QUANTILES` points); empty
        for a model trained before they were shipped (its scores are then None).
    fit_threshold, engagement_threshold : float
        The 0-100 scores at which each part counts as ``high``.
    n_reference : int
        Training rows the quantiles were computed on.
    """

    groups: Mapping[str, str]
    quantiles: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    fit_threshold: float = DEFAULT_THRESHOLD
    engagement_threshold: float = DEFAULT_THRESHOLD
    n_reference: int = 0

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.groups.items() if v not in ("fit", "engagement")}
        if bad:
            raise ValueError(f"The 'groups' parameter of FitEngagement must map features to "
                             f"'fit' or 'engagement'. Got {bad} instead.")
        Thresholds(self.fit_threshold, self.engagement_threshold)  # range check
        names = list(self.groups)
        object.__setattr__(self, "_fit_mask", np.array([self.groups[n] == "fit" for n in names]))
        # Built once: the hot path (one lead per call) must not rebuild arrays per call.
        object.__setattr__(self, "_q", {k: np.asarray(v, dtype=float)
                                        for k, v in self.quantiles.items() if v})
        object.__setattr__(self, "_q_list", {k: [float(x) for x in v]
                                             for k, v in self.quantiles.items() if v})

    # -- fitting ---------------------------------------------------------------------

    @classmethod
    def fit(cls, groups: Mapping[str, str], contributions: np.ndarray, *,
            thresholds: Thresholds | None = None) -> FitEngagement:
        """The split with its reference distributions, from training rows' contributions.

        ``contributions`` is (rows, features) in the order of ``groups``: TreeSHAP of the
        training rows (never validation or test rows).
        """
        contrib = np.asarray(contributions, dtype=float)
        if contrib.ndim != 2 or contrib.shape[1] != len(groups) or not len(contrib):
            raise ValueError(f"The 'contributions' parameter of FitEngagement.fit must be "
                             f"(rows, {len(groups)}) with at least one row. Got shape "
                             f"{contrib.shape} instead.")
        made = cls(groups)
        fit_part, engagement_part = made.parts(contrib)
        levels = np.linspace(0.0, 1.0, QUANTILES)
        t = thresholds or Thresholds()
        return cls(
            groups=dict(groups),
            quantiles={"fit": tuple(np.quantile(fit_part, levels).tolist()),
                       "engagement": tuple(np.quantile(engagement_part, levels).tolist())},
            fit_threshold=DEFAULT_THRESHOLD if t.fit is None else float(t.fit),
            engagement_threshold=(DEFAULT_THRESHOLD if t.engagement is None
                                  else float(t.engagement)),
            n_reference=len(contrib),
        )

    def with_thresholds(self, thresholds: Thresholds | None) -> FitEngagement:
        """This split with an operator's thresholds where given."""
        if thresholds is None or (thresholds.fit is None and thresholds.engagement is None):
            return self
        return replace(
            self,
            fit_threshold=self.fit_threshold if thresholds.fit is None else float(thresholds.fit),
            engagement_threshold=(self.engagement_threshold if thresholds.engagement is None
                                  else float(thresholds.engagement)))

    # -- applying --------------------------------------------------------------------

    def parts(self, contributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(fit part, engagement part)`` per row: the groups' sums of contributions."""
        contrib = np.asarray(contributions, dtype=float)
        if len(contrib) <= _FEW:
            # A few rows (every API call of one lead): plain sums, in feature order.
            mask = self._fit_mask.tolist()  # type: ignore[attr-defined]
            fit, engagement = [], []
            for row in contrib.tolist():
                fit.append(math.fsum(c for c, m in zip(row, mask, strict=True) if m))
                engagement.append(math.fsum(c for c, m in zip(row, mask, strict=True) if not m))
            return np.asarray(fit), np.asarray(engagement)
        mask = self._fit_mask  # type: ignore[attr-defined]
        return contrib[:, mask].sum(axis=1), contrib[:, ~mask].sum(axis=1)

    def score(self, group: str, part: np.ndarray) -> np.ndarray | None:
        """The 0-100 percentile of each part among the training rows (mid-rank for ties);
        None when the model ships no reference."""
        q_arr = self._q.get(group)  # type: ignore[attr-defined]
        if q_arr is None:
            return None
        if len(part) <= _FEW:
            q = self._q_list[group]  # type: ignore[attr-defined]
            return np.array([_percentile(q, float(x)) for x in part], dtype=int)
        part = np.asarray(part, dtype=float)
        lo = np.searchsorted(q_arr, part, side="left")
        hi = np.searchsorted(q_arr, part, side="right")
        top = len(q_arr) - 1
        # On a run of equal points (the many leads with no activity share one engagement
        # part) the middle of the run; between two points, linear; outside, 0 or 100.
        rank = (lo + hi - 1) / 2.0
        between = (lo == hi) & (lo > 0) & (lo <= top)
        if between.any():
            k = lo[between]
            left, right = q_arr[k - 1], q_arr[k]
            rank[between] = k - 1 + (part[between] - left) / np.where(right > left,
                                                                       right - left, 1.0)
        rank[(lo == hi) & (lo == 0)] = 0.0
        rank[(lo == hi) & (lo > top)] = top
        return np.clip(np.rint(100.0 * rank / top), 0, 100).astype(int)

    def answer(self, contributions: np.ndarray) -> list[dict[str, Any]]:
        """Per row: ``fit`` and ``engagement`` (score, level, part) and ``matrix_route``."""
        fit_part, engagement_part = self.parts(contributions)
        return self.answer_parts(fit_part, engagement_part)

    def answer_parts(self, fit_part: np.ndarray, engagement_part: np.ndarray
                     ) -> list[dict[str, Any]]:
        """:meth:`answer` from the two parts."""
        fit_score = self.score("fit", fit_part)
        engagement_score = self.score("engagement", engagement_part)
        return answers(fit_part, engagement_part, fit_score, engagement_score,
                       self.fit_threshold, self.engagement_threshold)

    # -- shipping --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"groups": dict(self.groups),
                "quantiles": {k: list(v) for k, v in self.quantiles.items()},
                "fit_threshold": self.fit_threshold,
                "engagement_threshold": self.engagement_threshold,
                "n_reference": self.n_reference}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitEngagement:
        return cls(groups=dict(data["groups"]),
                   quantiles={k: tuple(float(x) for x in v)
                              for k, v in (data.get("quantiles") or {}).items()},
                   fit_threshold=float(data.get("fit_threshold", DEFAULT_THRESHOLD)),
                   engagement_threshold=float(data.get("engagement_threshold",
                                                       DEFAULT_THRESHOLD)),
                   n_reference=int(data.get("n_reference", 0)))


def answers(fit_part: Sequence[float], engagement_part: Sequence[float],
            fit_score: Sequence[float] | None, engagement_score: Sequence[float] | None,
            fit_threshold: float, engagement_threshold: float) -> list[dict[str, Any]]:
    """The per-lead ``fit``, ``engagement`` and ``matrix_route`` from parts and scores
    (shared by the model, whose scores are percentiles, and the rules)."""
    n = len(fit_part)
    if fit_score is None or engagement_score is None:
        return [{"fit": part_dict(None, None, fit_part[i]),
                 "engagement": part_dict(None, None, engagement_part[i]),
                 "matrix_route": None} for i in range(n)]
    out = []
    for i in range(n):
        fit_high = float(fit_score[i]) >= fit_threshold
        engagement_high = float(engagement_score[i]) >= engagement_threshold
        out.append({
            "fit": part_dict(fit_score[i], "high" if fit_high else "low", fit_part[i]),
            "engagement": part_dict(engagement_score[i], "high" if engagement_high else "low",
                                    engagement_part[i]),
            "matrix_route": _ROUTE[fit_high, engagement_high]})
    return out


_FEW = 16
"""Up to this many rows, parts and percentiles are computed in plain Python: numpy's
per-call overhead is most of the cost at one lead (the same values, tested)."""


def _percentile(q: list[float], x: float) -> int:
    """:meth:`FitEngagement.score` of one value (the same rule, with bisect)."""
    top = len(q) - 1
    lo, hi = bisect.bisect_left(q, x), bisect.bisect_right(q, x)
    if lo != hi:
        rank = (lo + hi - 1) / 2.0
    elif lo == 0:
        rank = 0.0
    elif lo > top:
        rank = float(top)
    else:
        left, right = q[lo - 1], q[lo]
        rank = lo - 1 + (x - left) / (right - left if right > left else 1.0)
    return int(min(max(round(100.0 * rank / top), 0), 100))


_ROUTE = {(True, True): "sales", (True, False): "targeted_nurture",
          (False, True): "review", (False, False): "recycle"}
