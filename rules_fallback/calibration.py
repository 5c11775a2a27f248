"""Fitting the points-to-probability map on labelled history, and measuring the rules.

A rules file states its own logistic map from points to a probability. Once outcomes
exist, :func:`fit_mapping` refits its intercept and slope so that the rules' scores
are calibrated probabilities like the model's, and :func:`rules_metrics` reports how
well the rules rank leads (ROC AUC next to the model's, in training's evaluation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.errors import InsufficientDataError
from rules_fallback.engine import evaluate
from rules_fallback.rules import RuleSet

__all__ = ["fit_mapping", "rules_metrics"]


def _binary(labels: Any, n: int, *, caller: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(
            f"The 'labels' parameter of {caller} must have one label per row ({n}). "
            f"Got shape {y.shape} instead."
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError(
            f"The 'labels' parameter of {caller} must hold 0 and 1 only. "
            f"Got {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]} as well."
        )
    y = y.astype(int)
    if y.min() == y.max():
        raise InsufficientDataError(
            f"{caller} needs both converted and unconverted examples; all {n} labels are {y[0]}"
        )
    return y


def fit_mapping(rules: RuleSet, points: Any, labels: Any) -> RuleSet:
    """Refit the logistic map ``p = 1 / (1 + exp(-(a + b * points)))`` on labelled history.

    Parameters
    ----------
    rules : RuleSet
        The rule set whose points were computed.
    points : array-like of float
        Total points per example after the global cap (``score_leads(...)["points"]``),
        each scored at its own ``as_of``.
    labels : array-like of {0, 1}
        Whether each example converted within the horizon after its ``as_of``.

    Returns
    -------
    RuleSet
        A copy of ``rules`` with the fitted ``intercept`` and ``slope``; the rules and
        their points are unchanged, so rankings are too.

    Raises
    ------
    InsufficientDataError
        When the labels hold one class only, or when more points do not mean more
        conversions (a fitted slope <= 0): the rules need revising, not a new map.
    """
    x = np.asarray(points, dtype=float)
    y = _binary(labels, len(x), caller="fit_mapping")
    # Unpenalised: two parameters on thousands of examples need no shrinkage, and a
    # penalty would bias the slope towards zero (probabilities too flat).
    # Imported here: scikit-learn takes over a second to import, and every command that
    # loads the rules (the CLI itself, `leadscore --help` included) would pay it.
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)
    model.fit(x.reshape(-1, 1), y)
    intercept, slope = float(model.intercept_[0]), float(model.coef_[0, 0])
    if not slope > 0:
        raise InsufficientDataError(
            f"fit_mapping found a slope of {slope:.4g}: on this history more points do not "
            "mean more conversions, so no increasing map fits. Revise the rules."
        )
    return rules.with_mapping(intercept=intercept, slope=slope)


def rules_metrics(
    rules: RuleSet, leads: pd.DataFrame, activities: pd.DataFrame, as_of: Any, labels: Any
) -> dict[str, float]:
    """How well the rules rank and calibrate on labelled snapshots.

    ``leads`` holds one row per (lead, as_of) snapshot, ``as_of`` one timestamp per row,
    ``labels`` one 0/1 outcome per row. Returns ``roc_auc``, ``average_precision``,
    ``log_loss``, ``brier``, ``base_rate`` and ``n``.
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    evaluation = evaluate(rules, leads, activities, as_of)
    p = evaluation.probability
    y = _binary(labels, len(p), caller="rules_metrics")
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "average_precision": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12))),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": float(y.mean()),
        "n": float(len(y)),
    }
