"""From LightGBM's raw margin to a calibrated probability: isotonic or Platt.

The booster is trained with class weights (see :mod:`training.model`), so its raw
probabilities are not on the conversion-rate scale. A calibrator fitted on the
validation window maps the raw margin (log-odds) back to P(convert).

Which calibrator: both are fitted and the one with the lower *cross-validated* Brier
score on the validation window wins, then it is refitted on the whole window. Cross-
validating the choice matters: scored in-sample, isotonic regression always looks
better because it can memorise the window.

Known, accepted bias: the validation window also picked the booster's number of
trees (early stopping). That is one integer chosen on the same rows; the calibration
map has orders of magnitude more freedom, so we do not split the window further and
keep every validation positive for the calibrator. The test window, untouched by both,
is where calibration is judged (ECE, Brier).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from features.errors import InsufficientDataError

__all__ = ["PlattCalibrator", "IsotonicCalibrator", "fit_calibrator", "CALIBRATION_METHODS"]

CALIBRATION_METHODS = ("isotonic", "platt")

# Clip calibrated probabilities away from exactly 0 and 1: an isotonic step can reach
# them, and a log loss of infinity (or a "certain" lead) helps nobody.
_EPS = 1e-6


@dataclass
class PlattCalibrator:
    """Logistic map ``p = sigmoid(a * margin + b)``, stored as two floats for speed."""

    coef_: float = 1.0
    intercept_: float = 0.0
    method: str = field(default="platt", init=False)

    def fit(self, margin: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        # A very weak penalty: this is a 2-parameter fit on thousands of rows.
        lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
        lr.fit(np.asarray(margin, dtype=float).reshape(-1, 1), y)
        self.coef_ = float(lr.coef_[0, 0])
        self.intercept_ = float(lr.intercept_[0])
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        z = self.coef_ * np.asarray(margin, dtype=float) + self.intercept_
        return np.clip(1.0 / (1.0 + np.exp(-z)), _EPS, 1 - _EPS)


@dataclass
class IsotonicCalibrator:
    """Monotone step map from margin to probability (clipped outside the fitted range)."""

    x_: np.ndarray | None = None
    y_: np.ndarray | None = None
    method: str = field(default="isotonic", init=False)

    def fit(self, margin: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(np.asarray(margin, dtype=float), np.asarray(y, dtype=float))
        # Keep only the interpolation table: np.interp on it is what predict does, and
        # it is fast for one row and stable across sklearn versions when unpickled.
        self.x_ = np.asarray(iso.X_thresholds_, dtype=float)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=float)
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        if self.x_ is None:
            raise RuntimeError("IsotonicCalibrator is not fitted yet; call fit first.")
        p = np.interp(np.asarray(margin, dtype=float), self.x_, self.y_)
        return np.clip(p, _EPS, 1 - _EPS)


def _make(method: str) -> PlattCalibrator | IsotonicCalibrator:
    if method == "platt":
        return PlattCalibrator()
    if method == "isotonic":
        return IsotonicCalibrator()
    raise ValueError(
        f"The 'method' parameter of fit_calibrator must be one of {CALIBRATION_METHODS} "
        f"or 'auto'. Got {method!r} instead."
    )


def fit_calibrator(
    margin: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "auto",
    n_splits: int = 5,
    random_state: int = 0,
) -> tuple[PlattCalibrator | IsotonicCalibrator, dict[str, float]]:
    """Fit the calibrator with the lower cross-validated Brier score on ``(margin, y)``.

    Returns the calibrator refitted on all rows and the cross-validated Brier score of
    every candidate (``{"isotonic": ..., "platt": ...}``).
    """
    margin = np.asarray(margin, dtype=float)
    y = np.asarray(y, dtype=int)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < 2:
        raise InsufficientDataError(
            f"Calibration needs converted and unconverted leads in the validation window; "
            f"got {n_pos} converted and {n_neg} unconverted. Provide a longer time range."
        )
    candidates = CALIBRATION_METHODS if method == "auto" else (method,)
    folds = StratifiedKFold(
        n_splits=max(2, min(n_splits, n_pos, n_neg)), shuffle=True, random_state=random_state
    )
    briers: dict[str, float] = {}
    for name in candidates:
        out = np.empty(len(y))
        for fit_idx, held_idx in folds.split(margin.reshape(-1, 1), y):
            out[held_idx] = _make(name).fit(margin[fit_idx], y[fit_idx]).predict(margin[held_idx])
        briers[name] = float(brier_score_loss(y, out))
    # Ties go to Platt: two parameters generalise better than a step function.
    best = min(candidates, key=lambda name: (briers[name], name != "platt"))
    return _make(best).fit(margin, y), briers
