"""Calibrator choice by cross-validated Brier score, and the ECE definition."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import IsotonicCalibrator, PlattCalibrator, fit_calibrator
from training.evaluate import decile_table, expected_calibration_error, recall_at_top


def _labels(p, seed=0):
    return (np.random.default_rng(seed).uniform(size=len(p)) < p).astype(int)


def test_platt_wins_when_the_truth_is_logistic_in_the_margin():
    margin = np.random.default_rng(1).normal(0, 2, 20_000)
    y = _labels(1 / (1 + np.exp(-(0.7 * margin - 1.0))))
    cal, briers = fit_calibrator(margin, y)
    assert isinstance(cal, PlattCalibrator)
    assert cal.coef_ == pytest.approx(0.7, abs=0.05)
    assert briers["platt"] <= briers["isotonic"]


def test_isotonic_wins_when_the_truth_is_a_step():
    margin = np.random.default_rng(2).normal(0, 2, 20_000)
    y = _labels(np.where(margin > 1.0, 0.9, 0.05))
    cal, briers = fit_calibrator(margin, y)
    assert isinstance(cal, IsotonicCalibrator)
    assert briers["isotonic"] < briers["platt"]
    assert cal.predict(np.array([3.0, -3.0])) == pytest.approx([0.9, 0.05], abs=0.03)


def test_forced_method_and_monotone_output():
    margin = np.linspace(-3, 3, 500)
    y = _labels(1 / (1 + np.exp(-margin)))
    cal, briers = fit_calibrator(margin, y, method="isotonic")
    assert set(briers) == {"isotonic"}
    assert np.all(np.diff(cal.predict(margin)) >= 0)


def _naive_ece(y, p, n_bins):
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, n_bins):
        total += len(chunk) / len(p) * abs(p[chunk].mean() - y[chunk].mean())
    return total


def test_ece_is_equal_mass_weighted_gap():
    rng = np.random.default_rng(3)
    p = rng.beta(1, 8, 10_000)
    y = _labels(p)
    assert expected_calibration_error(y, p) == pytest.approx(_naive_ece(y, p, 10), abs=1e-12)
    assert expected_calibration_error(y, p) < 0.01
    # A probability scale off by half shows up as an ECE of about half the mean.
    assert expected_calibration_error(y, p / 2) == pytest.approx(p.mean() / 2, abs=0.01)


def test_ece_uniform_bins_and_bad_strategy():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.05, 0.95, 0.05, 0.95])
    assert expected_calibration_error(y, p, strategy="uniform") == pytest.approx(0.05)
    with pytest.raises(ValueError, match="'strategy' parameter"):
        expected_calibration_error(y, p, strategy="width")


def test_deciles_lift_and_recall_at_top():
    y = np.r_[np.ones(10), np.zeros(90)]
    p = np.r_[np.full(10, 0.9), np.full(90, 0.1)]
    table = decile_table(y, p)
    assert table.loc[1, "conversion_rate"] == 1.0
    assert table.loc[1, "lift"] == pytest.approx(10.0)
    assert recall_at_top(y, p, 10) == 1.0
    assert recall_at_top(y, p, 5) == 0.5
