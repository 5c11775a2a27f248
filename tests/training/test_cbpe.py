"""The label-free estimate (CBPE) against a naive reference and a Monte-Carlo simulation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.evaluate import decile_table, expected_performance, expected_roc_auc


def _naive_expected_auc(p: np.ndarray) -> float:
    """O(n^2): expected correctly ordered pairs over expected pairs, i != j."""
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            pair = p[i] * (1 - p[j])
            den += pair
            num += pair * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return num / den


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.01, 0.1, 0.1, 0.3, 0.5, 0.77, 0.9, 1.0]) |
                st.floats(0, 1), min_size=2, max_size=30))
def test_expected_auc_equals_the_pairwise_definition(values):
    p = np.asarray(values)
    expected = expected_roc_auc(p)
    den = p.sum() * (1 - p).sum() - np.sum(p * (1 - p))
    if den <= 0:
        assert np.isnan(expected)
    else:
        assert expected == pytest.approx(_naive_expected_auc(p), abs=1e-12)


def _auc(y: np.ndarray, ranks: np.ndarray) -> float:
    pos = y.sum()
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def test_expected_figures_match_labels_drawn_from_the_probabilities():
    """Monte-Carlo: draw labels y ~ Bernoulli(p) 2,000 times; the mean realised AUC,
    conversion rate and top-decile lift are the expected ones within their simulation
    error (plus the O(1/n) of a ratio of expectations)."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    n, sims = 3000, 2000
    # Skewed like lead scores: most leads unlikely, a few likely, many ties (isotonic).
    p = np.round(rng.beta(0.6, 6.0, n), 3)
    est = expected_performance(p)
    ranks = rankdata(p)  # average ranks: ties count half, as in the estimate
    top = np.argsort(-p, kind="stable")[: -(-n // 10)]
    aucs, rates, lifts = [], [], []
    for _ in range(sims):
        y = (rng.uniform(size=n) < p).astype(int)
        aucs.append(_auc(y, ranks))
        rates.append(y.mean())
        lifts.append(y[top].mean() / y.mean())
    for name, draws in (("expected_roc_auc", aucs), ("expected_conversion_rate", rates),
                        ("expected_top_decile_lift", lifts)):
        draws = np.asarray(draws)
        se = draws.std(ddof=1) / np.sqrt(sims)
        assert abs(draws.mean() - est[name]) < 4 * se + 2 / n, (name, draws.mean(), est[name])
    # And the realised AUC of one population scatters around it: the estimate is inside
    # the central 95% of the simulated AUCs.
    lo, hi = np.quantile(aucs, [0.025, 0.975])
    assert lo < est["expected_roc_auc"] < hi
    assert "calibration" in est["assumption"]


def test_the_top_decile_is_the_one_decile_table_cuts():
    p = np.linspace(0.01, 0.5, 95)
    y = np.ones(95)  # every lead converts: realised lift 1, and decile 1 has its size
    n_top = int(decile_table(y, p).loc[1, "n"])
    rate = p.mean()
    assert expected_performance(p)["expected_top_decile_lift"] == pytest.approx(
        np.sort(p)[::-1][:n_top].mean() / rate)


def test_degenerate_inputs_give_nan_not_errors():
    assert np.isnan(expected_performance(np.array([]))["expected_roc_auc"])
    assert np.isnan(expected_roc_auc(np.array([0.4])))
    assert np.isnan(expected_roc_auc(np.zeros(10)))  # no expected converter: no pairs
