"""LeadModel: the contract serving codes against."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.errors import ModelError
from features.grading import Grading
from training.model import LeadModel, grading_from_scores
from training.split import time_split

from .conftest import CATEGORICAL, FEATURES, make_frame


@pytest.fixture(scope="module")
def fitted():
    frame, _ = make_frame(6000, seed=5)
    split = time_split(frame["as_of"], frame["label"].to_numpy(), horizon=pd.Timedelta(days=28))
    model = LeadModel(FEATURES, CATEGORICAL, "test-1", num_boost_round=60)
    tr, va = frame.iloc[split.train], frame.iloc[split.valid]
    model.fit(tr[FEATURES], tr["label"], va[FEATURES], va["label"])
    return model, frame.iloc[split.test]


def test_refuses_to_predict_before_fit():
    model = LeadModel(FEATURES, CATEGORICAL)
    with pytest.raises(ModelError, match="not fitted yet"):
        model.predict_proba(make_frame(50)[0])


def test_invalid_parameters_say_what_was_expected():
    with pytest.raises(ValueError, match="'categorical_features' parameter of LeadModel"):
        LeadModel(["a"], ["b"])
    with pytest.raises(ValueError, match="'class_weight' parameter"):
        LeadModel(["a"], class_weight="inverse")


def test_fitted_attributes(fitted):
    model, test = fitted
    assert set(model.categories_) == set(CATEGORICAL)
    assert set(model.categories_["source"]) == {"web", "event", "referral", "ads"}
    assert model.calibrator_.method in ("isotonic", "platt")
    assert isinstance(model.grading, Grading)
    assert 0 < model.best_iteration_ <= 60
    assert model.booster_.num_trees() == model.best_iteration_
    p = model.predict_proba(test[FEATURES])
    assert p.shape == (len(test),) and np.all((p > 0) & (p < 1))


def test_contributions_sum_to_the_raw_margin(fitted):
    model, test = fitted
    per_feature, base = model.contributions(test[FEATURES])
    assert per_feature.shape == (len(test), len(FEATURES))
    np.testing.assert_allclose(per_feature.sum(1) + base, model.raw_margin(test[FEATURES]),
                               atol=1e-9)


# shap announces (for every binary LightGBM model) that its output shape changed once.
@pytest.mark.filterwarnings("ignore:LightGBM binary classifier with TreeExplainer:UserWarning")
def test_contributions_match_shap_tree_explainer(fitted):
    shap = pytest.importorskip("shap")
    model, test = fitted
    X = model.prepare(test[FEATURES].head(200))
    per_feature, base = model.contributions(test[FEATURES].head(200))
    explainer = shap.TreeExplainer(model.booster_)
    values = explainer.shap_values(X)
    values = values[1] if isinstance(values, list) else values
    np.testing.assert_allclose(per_feature, values, atol=1e-6)
    np.testing.assert_allclose(base, np.ravel(explainer.expected_value)[-1], atol=1e-6)


def test_unseen_and_missing_categories_do_not_crash(fitted):
    model, test = fitted
    rows = test[FEATURES].head(3).copy()
    rows["source"] = pd.array(["carrier-pigeon", None, "web"], dtype="string")
    rows["engagement"] = [np.nan, 1.0, 2.0]
    X = model.prepare(rows)
    assert np.isnan(X[0, FEATURES.index("source")]) and np.isnan(X[1, FEATURES.index("source")])
    assert np.isfinite(model.predict_proba(rows)).all()


def test_one_row_mapping_matches_the_frame(fitted):
    model, test = fitted
    row = test[FEATURES].iloc[[7]]
    as_mapping = {k: [v] for k, v in row.iloc[0].items()}
    np.testing.assert_array_equal(model.prepare(row), model.prepare(as_mapping))
    with pytest.raises(ModelError, match="lacks feature columns"):
        model.prepare(row.drop(columns="industry"))


def test_pickles_round_trip(fitted):
    model, test = fitted
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(test[FEATURES]),
                                  model.predict_proba(test[FEATURES]))


def test_grading_from_scores_puts_the_shares_in_each_grade():
    p = np.linspace(0.0, 0.99, 1000)
    grading = grading_from_scores(p, (0.1, 0.15, 0.25))
    from features.grading import score_from_probability

    grades = grading.grade(score_from_probability(p))
    shares = {g: float((grades == g).mean()) for g in "ABCD"}
    assert shares["A"] == pytest.approx(0.10, abs=0.02)
    assert shares["B"] == pytest.approx(0.15, abs=0.02)
    assert shares["C"] == pytest.approx(0.25, abs=0.02)


def test_fixed_grading_is_kept():
    frame, _ = make_frame(3000, seed=8)
    fixed = Grading(a=60, b=40, c=20)
    split = time_split(frame["as_of"], frame["label"].to_numpy(), horizon=pd.Timedelta(days=28))
    tr, va = frame.iloc[split.train], frame.iloc[split.valid]
    model = LeadModel(FEATURES, CATEGORICAL, grading=fixed, num_boost_round=20)
    model.fit(tr[FEATURES], tr["label"], va[FEATURES], va["label"])
    assert model.grading is fixed


def _respelled(values: pd.Series, how: int) -> pd.Series:
    spell = [str.upper, str.title, lambda v: f"  {v.capitalize()}\t"][how]
    return pd.array([None if pd.isna(v) else spell(v) for v in values], dtype="string")


def test_case_and_surrounding_whitespace_of_a_category_change_no_score():
    # The CRM writes "Referral", "Software"; the API caller "referral ", "software".
    frame, _ = make_frame(6000, seed=5)
    for column in CATEGORICAL:
        frame[column] = _respelled(frame[column], 1)
    split = time_split(frame["as_of"], frame["label"].to_numpy(), horizon=pd.Timedelta(days=28))
    model = LeadModel(FEATURES, CATEGORICAL, "test-1", num_boost_round=60)
    tr, va = frame.iloc[split.train], frame.iloc[split.valid]
    model.fit(tr[FEATURES], tr["label"], va[FEATURES], va["label"])
    assert set(model.categories_["source"]) == {"web", "event", "referral", "ads"}
    test = frame.iloc[split.test][FEATURES].head(300)
    expected = model.predict_proba(test)
    for how in range(3):
        rows = test.copy()
        for column in CATEGORICAL:
            rows[column] = _respelled(test[column], how)
        np.testing.assert_array_equal(model.predict_proba(rows), expected)
        one = {k: [v] for k, v in rows.iloc[0].items()}
        assert model.predict_proba(one)[0] == expected[0]
    # The category matters: the same rows with the source unknown score differently.
    unknown = test.assign(source=pd.array([None] * len(test), dtype="string"))
    assert not np.array_equal(model.predict_proba(unknown), expected)


def test_each_category_keeps_the_spelling_the_data_used_most():
    X = pd.DataFrame({"source": pd.array(["Olark Chat"] * 3 + ["olark chat", " Google "] + ["Google"] * 2
                                         + [None], dtype="string"),
                      "visits": np.arange(8.0)})
    model = LeadModel(["source", "visits"], ["source"], "test-1").fit_vocabulary(X)
    assert model.categories_["source"] == ["olark chat", "google"]
    assert model.category_spellings_["source"] == {"olark chat": "Olark Chat", "google": "Google"}


def test_a_model_pickled_with_case_sensitive_codes_matches_any_case(fitted):
    model, test = fitted
    rows = test[FEATURES].head(100)
    expected = model.predict_proba(rows)
    old = pickle.loads(pickle.dumps(model))
    # What a model pickled before categories were case-folded holds.
    old.categories_ = {n: [v.title() for v in c] for n, c in old.categories_.items()}
    old._code_maps_ = {n: {v: float(i) for i, v in enumerate(c)} for n, c in old.categories_.items()}
    again = pickle.loads(pickle.dumps(old))
    np.testing.assert_array_equal(again.predict_proba(rows), expected)
