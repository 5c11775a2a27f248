"""Drift against a reference shipped with the model: bins fitted once, counts merged, PSI.

Training fits a :class:`Reference` on the training window (:meth:`Reference.fit`): for
every feature its bins and their shares, and the same for the score. Serving and batch
never refit it; they count their rows into the same bins (:meth:`Reference.counts`,
which partitions can compute apart and add up) and compare the shares with the
population stability index (:func:`psi`).

Bins:

- a number: the training window's deciles as edges (repeated edges merged), so each
  bin held about a tenth of the training rows, plus one bin for missing values;
- a category: its 20 most frequent values, one bin for every other value (including a
  value never seen in training: a new campaign shows here) and one for missing.

``PSI = sum((a - e) * ln(a / e))`` over bins, with ``e`` the reference share and ``a``
the share now, each floored at :data:`FLOOR` so that an empty bin does not make it
infinite. The conventional reading (Siddiqi, *Credit Risk Scorecards*; Evidently uses
the same): below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FLOOR", "TOP_VALUES", "PSI_WARN", "PSI_ALERT", "FeatureBins", "Reference", "psi",
           "level"]

FLOOR = 1e-4
TOP_VALUES = 20
PSI_WARN = 0.10
PSI_ALERT = 0.25
SCORE = "__score__"
"""The reference entry of the model's probability."""


def level(value: float, warn: float = PSI_WARN, alert: float = PSI_ALERT) -> str:
    """``stable``, ``moderate`` or ``major`` for a PSI, by the conventional thresholds."""
    if not np.isfinite(value):
        return "unknown"
    return "major" if value > alert else "moderate" if value >= warn else "stable"


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float), FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class FeatureBins:
    """One feature's bins and the training window's share in each."""

    name: str
    kind: str
    """``numeric`` or ``categorical``."""
    shares: tuple[float, ...]
    """Per bin, in :meth:`labels` order; the last is missing."""
    edges: tuple[float, ...] = ()
    """numeric: interior edges; bin i holds edges[i-1] < x <= edges[i]."""
    values: tuple[str, ...] = ()
    """categorical: the top values; then "other", then missing."""

    @property
    def n_bins(self) -> int:
        return len(self.shares)

    def labels(self) -> list[str]:
        if self.kind == "numeric":
            bounds = ["-inf", *(f"{e:.6g}" for e in self.edges), "inf"]
            return [f"({lo}, {hi}]" for lo, hi in zip(bounds, bounds[1:], strict=False)] + ["missing"]
        return [*self.values, "other", "missing"]

    def counts(self, column: pd.Series | np.ndarray) -> np.ndarray:
        """How many of ``column``'s values fall in each bin (missing last)."""
        out = np.zeros(self.n_bins, dtype=np.int64)
        if self.kind == "numeric":
            x = pd.to_numeric(pd.Series(column), errors="coerce").to_numpy(dtype=float)
            missing = np.isnan(x)
            idx = np.searchsorted(np.asarray(self.edges, dtype=float), x[~missing], side="left")
            out[: self.n_bins - 1] = np.bincount(idx, minlength=self.n_bins - 1)
            out[-1] = int(missing.sum())
            return out
        s = pd.Series(column, dtype=object)
        missing = s.isna().to_numpy()
        keys = s[~missing].map(_key)
        position = {v: i for i, v in enumerate(self.values)}
        idx = keys.map(lambda v: position.get(v, len(self.values))).to_numpy(dtype=np.int64)
        out[: self.n_bins - 1] = np.bincount(idx, minlength=self.n_bins - 1)
        out[-1] = int(missing.sum())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "shares": list(self.shares),
                "edges": list(self.edges), "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureBins:
        return cls(name=str(d["name"]), kind=str(d["kind"]),
                   shares=tuple(float(v) for v in d["shares"]),
                   edges=tuple(float(v) for v in d.get("edges", ())),
                   values=tuple(str(v) for v in d.get("values", ())))


def _key(value: Any) -> str:
    # The same normalisation as the model's categories (trimmed, case-folded), so
    # "Google" and "google " are one bin, as they are one category to the model.
    return str(value).strip().casefold()


def _fit_numeric(name: str, x: np.ndarray) -> FeatureBins:
    present = x[~np.isnan(x)]
    edges: tuple[float, ...] = ()
    if len(present):
        qs = np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9)))
        edges = tuple(float(v) for v in qs if v < present.max())
    bins = FeatureBins(name, "numeric", shares=(0.0,) * (len(edges) + 2), edges=edges)
    return _with_shares(bins, x)


def _fit_categorical(name: str, s: pd.Series) -> FeatureBins:
    keys = s.dropna().map(_key)
    top = keys.value_counts().sort_index().sort_values(ascending=False, kind="mergesort")
    values = tuple(str(v) for v in top.index[:TOP_VALUES])
    bins = FeatureBins(name, "categorical", shares=(0.0,) * (len(values) + 2), values=values)
    return _with_shares(bins, s)


def _with_shares(bins: FeatureBins, column: Any) -> FeatureBins:
    counts = bins.counts(column)
    total = counts.sum()
    shares = tuple(float(c / total) if total else 0.0 for c in counts)
    return FeatureBins(bins.name, bins.kind, shares, bins.edges, bins.values)


@dataclass(frozen=True)
class Reference:
    """Every feature's bins and the score's, fitted on the training window."""

    features: tuple[FeatureBins, ...]
    score: FeatureBins | None = None
    n_rows: int = 0
    window: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fit(cls, X: pd.DataFrame, categorical: Sequence[str], score: np.ndarray | None = None,
            *, window: Mapping[str, str] | None = None) -> Reference:
        """Bins of each column of ``X`` (and of ``score``) from the training rows."""
        cats = set(categorical)
        features = tuple(
            _fit_categorical(c, X[c]) if c in cats
            else _fit_numeric(c, pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float))
            for c in X.columns
        )
        score_bins = None if score is None else _fit_numeric(SCORE, np.asarray(score, dtype=float))
        return cls(features, score_bins, len(X), dict(window or {}))

    def counts(self, X: pd.DataFrame, score: np.ndarray | None = None) -> dict[str, list[int]]:
        """Per feature (and the score) the count in each bin; counts of parts add up."""
        out = {b.name: b.counts(X[b.name]).tolist() for b in self.features if b.name in X}
        if self.score is not None and score is not None:
            out[SCORE] = self.score.counts(np.asarray(score, dtype=float)).tolist()
        return out

    def report(self, counts: Mapping[str, Sequence[int]], *, warn: float = PSI_WARN,
               alert: float = PSI_ALERT, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """PSI per feature and of the score from merged ``counts``, most shifted first."""
        labels = labels or {}
        rows = []
        for b in self.features:
            c = np.asarray(counts.get(b.name, ()), dtype=float)
            if not c.size or c.sum() == 0:
                continue
            value = psi(b.shares, c / c.sum())
            rows.append({"feature": b.name, "label": labels.get(b.name, b.name), "kind": b.kind,
                         "psi": value, "level": level(value, warn, alert),
                         "missing_share": float(c[-1] / c.sum()),
                         "reference_missing_share": b.shares[-1]})
        rows.sort(key=lambda r: (-r["psi"], r["feature"]))
        score_psi = float("nan")
        if self.score is not None and sum(counts.get(SCORE, ())) > 0:
            c = np.asarray(counts[SCORE], dtype=float)
            score_psi = psi(self.score.shares, c / c.sum())
        return {
            "score_psi": None if not np.isfinite(score_psi) else score_psi,
            "score_level": level(score_psi, warn, alert),
            "n_features": len(rows),
            "n_drifted": sum(r["psi"] > alert for r in rows),
            "n_moderate": sum(warn <= r["psi"] <= alert for r in rows),
            "thresholds": {"warn": warn, "alert": alert},
            "reference_rows": self.n_rows,
            "features": rows,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"features": [b.to_dict() for b in self.features],
                "score": None if self.score is None else self.score.to_dict(),
                "n_rows": self.n_rows, "window": dict(self.window)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reference:
        return cls(tuple(FeatureBins.from_dict(b) for b in d["features"]),
                   None if d.get("score") is None else FeatureBins.from_dict(d["score"]),
                   int(d.get("n_rows", 0)), dict(d.get("window", {})))
