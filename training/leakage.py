"""Leakage audit: features that predict the label too well to be honest.

Before training, every feature's single-feature ROC AUC is computed on the training
window. A feature is *suspect* when ``max(auc, 1 - auc) >= threshold`` (0.90): no
single CRM field legitimately separates converters that well, and the usual cause is a
field filled in by sales *after* the outcome (X Education's ``Tags``: "Will revert
after reading the email", "Closed by Horizzon", ...). Suspects and columns a dataset
spec marks leaky are reported in the run and excluded unless the user allows them.

How one feature gets a score to rank by:

- numeric: the value itself (missing values rank lowest); and, to catch
  non-monotone leaks and "missing unless converted" patterns, the out-of-fold
  conversion rate of its quantile bin (missing is a bin of its own);
- categorical: the out-of-fold conversion rate of its category (missing is a
  category). Out-of-fold (5 folds) so that a high-cardinality id-like column cannot
  score well by memorising each value's label.

The audit subsamples to ``max_rows`` stratified rows: AUCs at that size are accurate
to about 0.005, far finer than the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from training.evaluate import safe_auc

__all__ = ["LEAK_THRESHOLD", "LeakageReport", "audit_leakage"]

LEAK_THRESHOLD = 0.90


@dataclass(frozen=True)
class LeakageReport:
    """Per-feature single-feature AUC and what to exclude."""

    table: pd.DataFrame
    """One row per feature: feature, kind, auc (max of auc, 1-auc), auc_raw, auc_binned,
    declared_leaky, suspect, excluded."""
    excluded: tuple[str, ...]
    flagged: tuple[str, ...]
    threshold: float

    def to_tags(self) -> dict[str, str]:
        return {
            "leakage.flagged": ",".join(self.flagged) or "none",
            "leakage.excluded": ",".join(self.excluded) or "none",
            "leakage.threshold": f"{self.threshold:.2f}",
        }


def _oof_rate(codes: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold mean label per code, shrunk towards the fold's base rate."""
    out = np.empty(len(y), dtype=float)
    n_splits = int(min(5, max(2, min(y.sum(), len(y) - y.sum()))))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fit_idx, held_idx in folds.split(codes.reshape(-1, 1), y):
        fit = pd.DataFrame({"c": codes[fit_idx], "y": y[fit_idx]}).groupby("c")["y"]
        prior, k = y[fit_idx].mean(), 10.0
        rate = (fit.sum() + prior * k) / (fit.count() + k)
        out[held_idx] = pd.Series(codes[held_idx]).map(rate).fillna(prior).to_numpy()
    return out


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    auc = safe_auc(y, score)
    return float("nan") if np.isnan(auc) else max(auc, 1.0 - auc)


def audit_leakage(
    X: pd.DataFrame,
    y: np.ndarray,
    categorical: Sequence[str],
    *,
    declared_leaky: Sequence[str] = (),
    allow: Sequence[str] = (),
    threshold: float = LEAK_THRESHOLD,
    max_rows: int = 200_000,
    random_state: int = 0,
) -> LeakageReport:
    """Single-feature ROC AUC of every column of ``X`` on the training window.

    ``declared_leaky`` columns (e.g. a spec's ``leaky`` role) are always flagged,
    whether or not they are in ``X``. Flagged columns are excluded unless in ``allow``.
    """
    y = np.asarray(y, dtype=int)
    if len(y) > max_rows:
        keep, _ = train_test_split(
            np.arange(len(y)), train_size=max_rows, stratify=y, random_state=random_state
        )
        keep = np.sort(keep)
        X, y = X.iloc[keep], y[keep]
    categorical = set(categorical)
    rows = []
    for name in X.columns:
        col = X[name]
        if name in categorical:
            codes = col.astype("string").fillna("\x00missing").to_numpy(dtype=object)
            auc_raw = float("nan")
            auc_binned = _auc(y, _oof_rate(codes, y, random_state))
            kind = "categorical"
        else:
            v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            filled = np.where(np.isnan(v), np.nanmin(v) - 1 if (~np.isnan(v)).any() else 0, v)
            auc_raw = _auc(y, filled)
            ranks = pd.Series(v).rank(pct=True).to_numpy()
            # Quantile bin 0-19 of the value; -1 for missing (cast after filling NaN).
            codes = np.minimum(np.nan_to_num(ranks * 20, nan=-1.0).astype(int), 19)
            auc_binned = _auc(y, _oof_rate(codes, y, random_state))
            kind = "numeric"
        rows.append({"feature": name, "kind": kind, "auc_raw": auc_raw,
                     "auc_binned": auc_binned})
    table = pd.DataFrame(rows, columns=["feature", "kind", "auc_raw", "auc_binned"])
    table["auc"] = table[["auc_raw", "auc_binned"]].max(axis=1)
    for name in declared_leaky:
        if name not in set(table["feature"]):
            table.loc[len(table)] = {"feature": name, "kind": "declared", "auc_raw": np.nan,
                                     "auc_binned": np.nan, "auc": np.nan}
    table["declared_leaky"] = table["feature"].isin(list(declared_leaky))
    table["suspect"] = table["auc"] >= threshold
    flagged_mask = table["declared_leaky"] | table["suspect"]
    table["excluded"] = flagged_mask & ~table["feature"].isin(list(allow))
    table = table.sort_values("auc", ascending=False, na_position="last").reset_index(drop=True)
    return LeakageReport(
        table=table,
        excluded=tuple(table.loc[table["excluded"], "feature"]),
        flagged=tuple(table.loc[table["declared_leaky"] | table["suspect"], "feature"]),
        threshold=threshold,
    )
