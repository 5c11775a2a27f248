"""The fast explainer (training.treeshap) equals LightGBM's pred_contrib on every row.

Random small models cover what a tree can hold: numerical splits with every missing
type (None, Zero, NaN) and both default directions, categorical splits (one-hot and
many-vs-many), single-leaf trees, repeated features on a path, shallow and deep trees,
and both of the explainer's modes (v2 tables, and per-row v1 for trees too deep for
them). Rows to explain carry NaNs, zeros, negative and unseen category codes.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.model import LeadModel
from training.treeshap import TreeShap, UnsupportedModel

from .conftest import CATEGORICAL, FEATURES, make_frame

TOLERANCE = 1e-9


@st.composite
def models(draw):  # type: ignore[no-untyped-def]
    """(booster, rows to explain) for a random small data set and parameter draw."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(30, 400))
    k = draw(st.integers(1, 6))
    n_cat = draw(st.integers(0, k))
    cards = [draw(st.integers(2, 40)) for _ in range(n_cat)]
    X = rng.normal(size=(n, k)) * draw(st.sampled_from([1.0, 1e-3, 100.0]))
    for j, card in enumerate(cards):
        X[:, j] = rng.integers(0, card, n)
    # Missing values and exact zeros, in training data and in the rows explained.
    X[rng.random((n, k)) < draw(st.sampled_from([0.0, 0.1, 0.4]))] = np.nan
    X[rng.random((n, k)) < draw(st.sampled_from([0.0, 0.2]))] = 0.0
    signal = np.nansum(X, axis=1) + rng.normal(size=n)
    objective = draw(st.sampled_from(["binary", "regression"]))
    if objective == "binary":
        y = (signal > np.median(signal)).astype(float)
    else:
        y = signal if draw(st.booleans()) else np.full(n, 1.5)  # constant: single leaves
    params = {
        "objective": objective, "verbose": -1, "seed": seed % 10_000,
        "num_leaves": draw(st.integers(2, 63)),
        "max_depth": draw(st.sampled_from([-1, 1, 2, 3, 5, 8])),
        "min_data_in_leaf": draw(st.integers(1, 40)),
        "min_sum_hessian_in_leaf": 0.0,
        "learning_rate": draw(st.sampled_from([0.05, 0.3, 1.0])),
        "max_cat_to_onehot": draw(st.integers(1, 8)),
        "min_data_per_group": draw(st.integers(1, 20)),
        "cat_smooth": draw(st.sampled_from([0.0, 1.0, 10.0])),
        "zero_as_missing": draw(st.booleans()),
        "use_missing": draw(st.booleans()),
        "feature_fraction": draw(st.sampled_from([1.0, 0.6])),
        "bagging_fraction": draw(st.sampled_from([1.0, 0.7])), "bagging_freq": 1,
        "min_data_in_bin": 1,
    }
    data = lgb.Dataset(X, label=y, categorical_feature=list(range(n_cat)) or "auto",
                       params={"verbose": -1, "min_data_in_bin": 1})
    booster = lgb.train(params, data, num_boost_round=draw(st.integers(1, 8)))
    extra = rng.normal(size=(40, k)) * 3
    for j, card in enumerate(cards):  # unseen, negative and fractional codes
        extra[:, j] = rng.choice([-1.0, -0.5, 0.0, 0.7, card + 3.0, np.nan, 1.0], 40)
    extra[rng.random((40, k)) < 0.2] = np.nan
    extra[rng.random((40, k)) < 0.2] = 0.0
    return booster, np.vstack([X, extra])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.sampled_from([16, 3, 0]))
def test_fast_explainer_equals_pred_contrib(model_and_rows, max_leaf_features):
    booster, rows = model_and_rows
    explainer = TreeShap(booster, max_leaf_features=max_leaf_features)
    if max_leaf_features == 0:  # every tree with splits goes through the per-row v1 path
        assert explainer.v2_leaves_ == 0
    got = explainer.contributions(rows)
    expected = booster.predict(rows, pred_contrib=True)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_large_calls_use_threads_and_give_the_same_values():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (X[:, 0] + rng.normal(size=3000) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1},
                        lgb.Dataset(X, y), 30)
    explainer = TreeShap(booster, num_threads=2)
    expected = booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(explainer.contributions(X), expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(explainer.contributions(X, num_threads=1), expected,
                               rtol=0, atol=TOLERANCE)


def test_multiclass_is_refused_for_pred_contrib():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = rng.integers(0, 3, 300)
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                        lgb.Dataset(X, y), 3)
    with pytest.raises(UnsupportedModel, match="multiclass"):
        TreeShap(booster)


def test_wrong_width_is_refused():
    booster = lgb.train({"objective": "regression", "verbose": -1},
                        lgb.Dataset(np.arange(100.0).reshape(50, 2), np.arange(50.0)), 2)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        TreeShap(booster).contributions(np.zeros((3, 3)))


@pytest.fixture(scope="module")
def real_model():
    """The LeadModel of the training tests' own fixture data (a real categorical mix)."""
    frame, _ = make_frame(6000, seed=11)
    frame = frame.sort_values("as_of", kind="stable")
    cut = int(len(frame) * 0.8)
    model = LeadModel(FEATURES, CATEGORICAL, "test-1", num_boost_round=120,
                      early_stopping_rounds=1000, params={"min_data_in_leaf": 20})
    tr, va = frame.iloc[:cut], frame.iloc[cut:]
    model.fit(tr[FEATURES], tr["label"], va[FEATURES], va["label"])
    return model, va


def test_lead_model_uses_the_fast_explainer_and_equals_pred_contrib(real_model):
    model, rows = real_model
    assert model.explainer == "fast"
    X = rows[FEATURES]
    per_feature, base = model.contributions(X)
    expected = model.booster_.predict(model.prepare(X), pred_contrib=True)
    np.testing.assert_allclose(per_feature, expected[:, :-1], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(base, expected[:, -1], rtol=0, atol=TOLERANCE)
    one = X.head(1)
    np.testing.assert_allclose(model.contributions(one)[0], expected[:1, :-1], rtol=0,
                               atol=TOLERANCE)


def test_pred_contrib_stays_behind_the_switch(real_model, monkeypatch):
    model, rows = real_model
    X = rows[FEATURES].head(20)
    fast = model.contributions(X)
    model.use_explainer("pred_contrib")
    try:
        import training.treeshap as ts

        def refuse(*_a, **_k):  # the switch must not touch the fast explainer at all
            raise AssertionError("the fast explainer ran under explainer='pred_contrib'")

        monkeypatch.setattr(ts.TreeShap, "contributions", refuse)
        slow = model.contributions(X)
    finally:
        monkeypatch.undo()
        model.use_explainer("fast")
    np.testing.assert_allclose(slow[0], fast[0], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(slow[1], fast[1], rtol=0, atol=TOLERANCE)
    with pytest.raises(ValueError, match="'explainer' parameter of LeadModel.use_explainer"):
        model.use_explainer("shap")


def test_the_explainer_is_not_pickled_with_the_model(real_model):
    import pickle

    model, rows = real_model
    model.contributions(rows[FEATURES].head(2))
    state = model.__getstate__()
    assert "_fast" not in state and "_explainer" not in state
    clone = pickle.loads(pickle.dumps(model))
    assert clone.explainer == "fast"
    np.testing.assert_allclose(clone.contributions(rows[FEATURES].head(5))[0],
                               model.contributions(rows[FEATURES].head(5))[0], atol=0)
    assert isinstance(rows, pd.DataFrame)
