"""CV-bagging: the merged booster is the average of the fold boosters, for the margin and
for TreeSHAP, and a bagged cross-fit explains, pickles and reloads like any model."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np

from training.bagging import average_boosters
from training.crossfit import crossfit_folds
from training.model import LeadModel
from training.treeshap import TreeShap

from .conftest import CATEGORICAL, FEATURES, make_frame


def _fold_boosters(rounds: int = 40):
    rng = np.random.default_rng(0)
    X = rng.random((900, 4))
    X[:, 3] = rng.integers(0, 8, len(X))
    y = ((X[:, 0] + 0.4 * (X[:, 3] > 4) + rng.normal(0, 0.3, len(X))) > 0.9).astype(int)
    data = lgb.Dataset(X, y, categorical_feature=[3], free_raw_data=False,
                       params={"verbose": -1})
    cv = lgb.cv({"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5,
                 "cat_smooth": 1.0, "min_data_per_group": 5},
                data, rounds, nfold=4, return_cvbooster=True)
    return cv["cvbooster"].boosters, X


def test_merged_booster_is_the_average_margin_and_the_average_shap():
    boosters, X = _fold_boosters()
    merged = average_boosters(boosters, num_iteration=30)
    assert merged.num_trees() == 4 * 30
    mean_margin = np.mean([b.predict(X, num_iteration=30, raw_score=True) for b in boosters], 0)
    mean_contrib = np.mean([b.predict(X, num_iteration=30, pred_contrib=True)
                            for b in boosters], 0)
    np.testing.assert_allclose(merged.predict(X, raw_score=True), mean_margin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(merged.predict(X, pred_contrib=True), mean_contrib,
                               rtol=0, atol=1e-9)
    # The fast explainer reads the merged trees like any booster's.
    np.testing.assert_allclose(TreeShap(merged).contributions(X), mean_contrib,
                               rtol=0, atol=1e-9)
    # And the merged text is a model LightGBM reloads unchanged.
    again = lgb.Booster(model_str=merged.model_to_string())
    np.testing.assert_array_equal(again.predict(X, raw_score=True),
                                  merged.predict(X, raw_score=True))


def test_bagged_crossfit_calibrates_on_its_members_and_explains_its_margin():
    frame, _ = make_frame(2500, seed=3)
    y = frame["label"].to_numpy(dtype=int)
    folds = crossfit_folds(y, n_splits=4, random_state=0)
    bag = LeadModel(FEATURES, CATEGORICAL, "t", num_boost_round=120, early_stopping_rounds=20)
    bag.fit_crossfit(frame[FEATURES], y, folds, refit="bag")
    single = LeadModel(FEATURES, CATEGORICAL, "t", num_boost_round=120, early_stopping_rounds=20)
    single.fit_crossfit(frame[FEATURES], y, folds, refit="single")
    rounds = bag.crossfit_["cv_rounds"]
    assert bag.crossfit_["cv_refit"] == "bag" and single.crossfit_["cv_refit"] == "single"
    assert bag.booster_.num_trees() == len(folds.folds) * rounds
    assert single.booster_.num_trees() == rounds
    # Same folds, same rounds: the same out-of-fold margins, so the same calibration rows.
    np.testing.assert_array_equal(bag.crossfit_["calibration_rows"],
                                  single.crossfit_["calibration_rows"])
    assert bag.crossfit_["oof_roc_auc"] == single.crossfit_["oof_roc_auc"]
    per_feature, base = bag.use_explainer("fast").contributions(frame[FEATURES].head(200))
    np.testing.assert_allclose(per_feature.sum(axis=1) + base,
                               bag.raw_margin(frame[FEATURES].head(200)), atol=1e-9)
    again = pickle.loads(pickle.dumps(bag))
    np.testing.assert_array_equal(again.predict_proba(frame[FEATURES]),
                                  bag.predict_proba(frame[FEATURES]))
