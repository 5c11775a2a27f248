"""The fitted lead-scoring model: vocabularies, LightGBM booster, calibrator and grades.

:class:`LeadModel` is what the registry ships and what serving loads. It is a plain
picklable object with a scikit-learn-like contract: ``__init__`` stores parameters,
``fit`` learns the attributes whose names end in ``_`` and returns ``self``, and every
prediction method refuses to run before ``fit``.

Everything learned from data is fitted here once and shipped with the model
(STYLE principle 5): the category vocabularies, the booster, the calibration map and
the grade thresholds. Serving never recomputes any of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.errors import ModelError
from features.grading import Grading, score_from_probability
from features.registry import FeatureSet
from training.calibration import fit_calibrator

__all__ = ["LeadModel", "DEFAULT_PARAMS", "DEFAULT_GRADE_SHARES", "EXPLAINERS",
           "FAST_MIN_ROWS", "category_key", "grading_from_scores"]

logger = logging.getLogger(__name__)

Explainer = Literal["fast", "pred_contrib"]
EXPLAINERS: tuple[str, ...] = ("fast", "pred_contrib")
"""How :meth:`LeadModel.contributions` computes TreeSHAP: ``fast`` is
:class:`training.treeshap.TreeShap` (Fast TreeSHAP v2, the same values as LightGBM's
``pred_contrib`` to 1e-9, tested); ``pred_contrib`` is LightGBM's own, kept as a switch."""

FAST_MIN_ROWS = 1
"""Calls with fewer rows than this go to ``pred_contrib`` even with the fast explainer.
``benchmarks/explain.py`` measured the fast one ahead at every size, one row included
(numba's dispatch costs microseconds, LightGBM's per-call set-up more), so no call is
routed away; the knob stays for a machine where that would not hold."""

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.03,
    # 31 leaves: explanations (pred_contrib) cost grows with leaves more than with depth.
    "num_leaves": 31,
    # Snapshots of one lead are correlated rows: demand large leaves so that a split
    # needs many leads, not many snapshots of a few.
    "min_data_in_leaf": 200,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    # Native categoricals overfit fast on high-cardinality fields (campaigns, countries):
    # smooth and penalise category splits. On synthetic data (5k leads) this moved test
    # ROC AUC from 0.66 to 0.71.
    "cat_smooth": 50.0,
    "cat_l2": 20.0,
    "min_data_per_group": 200,
    "max_cat_threshold": 16,
    "max_cat_to_onehot": 4,
    "verbose": -1,
}
"""LightGBM parameters used unless overridden. ``seed`` and the imbalance weight are
added by :meth:`LeadModel.fit`."""

DEFAULT_GRADE_SHARES: tuple[float, float, float] = (0.10, 0.15, 0.25)
"""Share of validation leads in grades A, B and C (D is the remaining 50%).

A is the top 10% by calibrated score, B the next 15% and C the next 25%. With the
default ``sales_grades=("A", "B")`` the top quarter goes to sales, a common sales
capacity. Override with ``LeadModel(grade_shares=...)`` or a fixed ``grading=``.
"""

# Vocabulary cap per categorical feature: beyond it, categories are rare enough that
# LightGBM would pool them anyway, and codes must stay small ints.
MAX_CATEGORIES = 1000


def grading_from_scores(
    probability: np.ndarray, shares: Sequence[float] = DEFAULT_GRADE_SHARES
) -> Grading:
    """Grade thresholds that put ``shares`` of the given leads into A, B and C.

    Thresholds are on the 0-100 score and taken from its upper quantiles, so they are
    as many integers as the score distribution allows (ties at a threshold go up).
    """
    shares = tuple(float(s) for s in shares)
    if len(shares) != 3 or any(s < 0 for s in shares) or sum(shares) > 1:
        raise ValueError(
            "The 'grade_shares' parameter of LeadModel must be three non-negative shares "
            f"(A, B, C) summing to at most 1. Got {shares} instead."
        )
    score = score_from_probability(probability).astype(float)
    cum = np.cumsum(shares)
    a, b, c = (float(np.quantile(score, 1.0 - q)) if q > 0 else 100.0 for q in cum)
    # A lead at score 0 is never graded above D: keep thresholds at least 1.
    a, b, c = max(a, 1.0), max(b, 1.0), max(c, 1.0)
    return Grading(a=a, b=min(b, a), c=min(c, b, a))


class LeadModel:
    """Calibrated LightGBM lead-scoring model over a declared feature schema.

    Parameters
    ----------
    feature_names : list of str
        Model inputs, in order. ``prepare`` returns columns in this order.
    categorical_features : list of str
        The subset of ``feature_names`` handled as LightGBM native categoricals.
    feature_set_version : str
        Version of the feature registry (or dataset spec fingerprint) these features
        come from. Promotion compares it between champion and challenger.
    params : dict, optional
        LightGBM parameters overriding :data:`DEFAULT_PARAMS`.
    num_boost_round : int, default=1000
        Maximum number of trees; early stopping on the validation rows picks fewer.
    early_stopping_rounds : int, default=150
        Patience of early stopping, on validation ROC AUC. Validation AUC on a small
        export is noisy: with a patience of 50 (at the learning rate of 0.03) it stopped
        X Education's model at 2 and 7 trees on two of five stratified splits; 150 gave
        0.8713 ± 0.0050 hold-out AUC over the five instead of 0.8671 ± 0.0034, no split
        worse, and the same model on synthetic data (it peaks long before).
    class_weight : {"sqrt", "balanced", None}, default="sqrt"
        Weight of the converted class: ``sqrt(neg/pos)``, ``neg/pos`` or 1. Weighting
        helps the trees find splits for the rare class; the calibrator then restores
        the probability scale.
    calibration : {"auto", "isotonic", "platt"}, default="auto"
        ``auto`` picks the lower cross-validated Brier score on the validation rows.
    grade_shares : tuple of 3 floats, default=DEFAULT_GRADE_SHARES
        Shares of validation leads in grades A, B, C when ``grading`` is not given.
    grading : Grading, optional
        Fixed grade thresholds; when given, ``grade_shares`` is ignored.
    random_state : int, default=0

    Attributes
    ----------
    categories_ : dict of str to list of str
        Fitted vocabulary per categorical feature, as :func:`category_key` normalises
        it (trimmed, case-folded). At prediction time a value is normalised the same way;
        an unseen or missing category becomes missing (NaN), which LightGBM routes
        without error.
    category_spellings_ : dict of str to dict of str to str
        Per categorical feature, each learned category as the training rows spelt it
        most often ("Google" for "google"), for text a person reads; never for scoring.
    booster_ : lightgbm.Booster
        Trained booster, truncated at the best iteration.
    best_iteration_ : int
    calibrator_ : PlattCalibrator or IsotonicCalibrator
    calibration_brier_ : dict of str to float
        Cross-validated validation Brier score of each calibrator candidate.
    grading : Grading
        Grade thresholds (derived in ``fit`` unless given). Part of the serving
        contract, hence no trailing underscore.
    metrics, cold_start, data_window, field_labels, feature_set_definition : dict
        Metadata filled by the training pipeline: test-window metrics, the cold-start
        comparison with the rules, the data time window, display labels of BYO fields,
        and the definition of the feature set the features come from
        (:meth:`features.registry.FeatureSet.to_json`; see :meth:`feature_set`).
    dataset_spec : str
        The YAML document of the dataset spec it was trained through ("" for none).
    reference : dict
        The training window's distribution of every feature and of the score
        (:meth:`features.drift.Reference.to_dict`), what rescoring measures drift
        against; empty for a model trained before it was kept.
    fit_engagement : dict
        The fit/engagement split (:meth:`features.matrix.FitEngagement.to_dict`): each
        feature's group, the training rows' distribution of both parts and the matrix
        thresholds; see :meth:`matrix`. Empty for a model trained before it was kept.
    cold_start_rules : str
        Rules YAML fitted on the training window and compared with the model on leads
        with no history ("" when the packaged default rules were the baseline). A spec
        model's service answers cold starts with them when the comparison prefers rules.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        categorical_features: Sequence[str] = (),
        feature_set_version: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        num_boost_round: int = 1000,
        early_stopping_rounds: int = 150,
        class_weight: str | None = "sqrt",
        calibration: str = "auto",
        grade_shares: Sequence[float] = DEFAULT_GRADE_SHARES,
        grading: Grading | None = None,
        random_state: int = 0,
    ) -> None:
        self.feature_names = list(feature_names)
        self.categorical_features = list(categorical_features)
        self.feature_set_version = str(feature_set_version)
        self.params = dict(params or {})
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.class_weight = class_weight
        self.calibration = calibration
        self.grade_shares = tuple(grade_shares)
        self.grading = grading
        self.random_state = random_state
        self.metrics: dict[str, float] = {}
        self.cold_start: dict[str, Any] = {}
        self.cold_start_rules: str = ""
        self.reference: dict[str, Any] = {}
        self.data_window: dict[str, Any] = {}
        self.field_labels: dict[str, str] = {}
        self.feature_set_definition: dict[str, Any] = {}
        self.dataset_spec: str = ""
        self.fit_engagement: dict[str, Any] = {}
        self._validate_params()

    def _validate_params(self) -> None:
        unknown = [c for c in self.categorical_features if c not in self.feature_names]
        if unknown:
            raise ValueError(
                "The 'categorical_features' parameter of LeadModel must be a subset of "
                f"feature_names. Got {unknown} instead."
            )
        if len(set(self.feature_names)) != len(self.feature_names) or not self.feature_names:
            raise ValueError(
                "The 'feature_names' parameter of LeadModel must be non-empty and unique. "
                f"Got {self.feature_names} instead."
            )
        if self.class_weight not in ("sqrt", "balanced", None):
            raise ValueError(
                "The 'class_weight' parameter of LeadModel must be 'sqrt', 'balanced' or "
                f"None. Got {self.class_weight!r} instead."
            )

    # ------------------------------------------------------------------ fitting

    def fit_vocabulary(self, X: pd.DataFrame) -> LeadModel:
        """Learn ``categories_`` from the training rows (most frequent first, capped).

        Categories are learned as :func:`category_key` gives them (trimmed, case-folded),
        so "Software", "software" and " SOFTWARE " are one category, in training and in
        every scoring path (the API's, the vectorised one, batch), which all go through
        :meth:`prepare`.
        """
        cats: dict[str, list[str]] = {}
        spellings: dict[str, dict[str, str]] = {}
        for name in self.categorical_features:
            raw = X[name].astype(object).value_counts(dropna=True)  # fold each distinct value once
            keys = pd.Series([category_key(v) for v in raw.index], dtype=object)
            counts = pd.Series(raw.to_numpy(), index=keys).loc[keys.notna().to_numpy()]
            counts = counts.groupby(level=0).sum()
            # Frequency order, then name: deterministic, and the cap drops the rarest.
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            cats[name] = [k for k, _ in ordered[:MAX_CATEGORIES]]
            # How people wrote each category most often ("Google", not "google"): for
            # text a person reads (the page's samples), never for scoring.
            seen: dict[str, str] = {}
            for value, key in zip(raw.index, keys, strict=True):  # most frequent first
                if key is not None and key in counts.index:
                    seen.setdefault(key, str(value).strip())
            spellings[name] = {k: seen[k] for k in cats[name]}
        self.categories_ = cats
        self.category_spellings_ = spellings
        self._build_code_maps()
        return self

    def _build_code_maps(self) -> None:
        # setdefault: a model pickled before categories were case-folded may hold both
        # "Software" and "software"; the more frequent (listed first) keeps its code.
        maps: dict[str, dict[str, float]] = {}
        for name, categories in self.categories_.items():
            codes: dict[str, float] = {}
            for i, value in enumerate(categories):
                key = category_key(value)
                if key is not None:
                    codes.setdefault(key, float(i))
            maps[name] = codes
        self._code_maps_ = maps
        self._cat_mask_ = np.array([n in self.categories_ for n in self.feature_names])

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "categories_" in state:
            # Rebuilt on load, so that models pickled with case-sensitive code maps
            # look categories up the same case-insensitive way.
            self._build_code_maps()

    def lgb_params(self, y_train: np.ndarray) -> dict[str, Any]:
        """The LightGBM parameters ``fit`` trains with (defaults, overrides, weight, seed)."""
        y_train = np.asarray(y_train)
        pos = max(int(y_train.sum()), 1)
        neg = max(int(len(y_train) - y_train.sum()), 1)
        weight = {"sqrt": np.sqrt(neg / pos), "balanced": neg / pos, None: 1.0}[self.class_weight]
        return {
            **DEFAULT_PARAMS,
            "metric": ["auc", "binary_logloss"],
            "first_metric_only": True,
            "scale_pos_weight": float(weight),
            "seed": self.random_state,
            **self.params,
        }

    def fit(
        self,
        X_train: pd.DataFrame,
        y_train: np.ndarray,
        X_valid: pd.DataFrame,
        y_valid: np.ndarray,
        *,
        booster: lgb.Booster | None = None,
    ) -> LeadModel:
        """Fit vocabularies and booster on train, early stopping + calibration on valid.

        ``booster`` lets a distributed trainer (see :mod:`training.distributed`) supply
        a booster trained elsewhere on the same prepared columns; the vocabularies must
        then have been fitted first with :meth:`fit_vocabulary`.
        """
        y_train = np.asarray(y_train, dtype=int)
        y_valid = np.asarray(y_valid, dtype=int)
        if booster is None:
            self.fit_vocabulary(X_train)
            train_set = self._dataset(self.prepare(X_train), y_train)
            valid_set = self._dataset(self.prepare(X_valid), y_valid, reference=train_set)
            trained, best = self._train_early_stopped(self.lgb_params(y_train), train_set,
                                                      valid_set)
        else:
            if not hasattr(self, "categories_"):
                raise ModelError("fit_vocabulary must run before fit(booster=...).")
            trained, best = booster, booster.current_iteration()
        # Truncate at the best iteration so that predict, pred_contrib and the saved
        # booster.txt all mean the same trees, whatever num_iteration callers pass.
        self.booster_ = lgb.Booster(model_str=trained.model_to_string(num_iteration=best))
        self.best_iteration_ = int(best)
        margin_valid = self.raw_margin(X_valid)
        self.calibrator_, self.calibration_brier_ = fit_calibrator(
            margin_valid, y_valid, method=self.calibration, random_state=self.random_state
        )
        if self.grading is None:
            self.grading = grading_from_scores(
                self.calibrator_.predict(margin_valid), self.grade_shares
            )
        return self

    def fit_crossfit(self, X_pool: pd.DataFrame, y_pool: np.ndarray, folds: Any, *,
                     refit: str = "single") -> LeadModel:
        """Cross-fit on a small pool (train + validation rows; never test rows).

        ``folds`` (:class:`training.crossfit.Folds`, positions into the pool) choose the
        round count (``lightgbm.cv``, early stopping on the mean held-out AUC). With
        ``refit="single"`` (the default) one booster is refitted on the whole pool with
        that count. With ``refit="bag"`` the model is the average of the fold boosters at that count,
        merged into one booster (:func:`training.bagging.average_boosters`): the
        out-of-fold margins are then exactly the held-out predictions of the bagged
        members. On X Education's five splits bagging reached test ROC AUC 0.8739 against
        0.8746 for the single refit (``benchmarks/training_quality.py --crossfit-refit``),
        so the single refit stays the default. The calibrator and
        the grades are fitted on the out-of-fold margins of the held-out rows, each
        from the fold model that did not see it, at the chosen round count.

        Sets ``crossfit_``: the folds' summary, the chosen rounds, the out-of-fold ROC
        AUC and ``calibration_rows`` (the pool positions the calibrator saw).
        """
        from training.evaluate import safe_auc

        y_pool = np.asarray(y_pool, dtype=int)
        if len(folds.folds) < 2:
            raise ModelError(f"Cross-fitting needs at least two usable folds; got "
                             f"{len(folds.folds)} ({folds.kind}).")
        self.fit_vocabulary(X_pool)
        M = self.prepare(X_pool)
        pool_set = self._dataset(M, y_pool)
        params = self.lgb_params(y_pool)
        cv, rounds = self._cv(params, pool_set, folds)
        oof = np.full(len(y_pool), np.nan)
        for fold, booster in zip(folds.folds, cv["cvbooster"].boosters, strict=True):
            oof[fold.held] = booster.predict(M[fold.held], num_iteration=rounds, raw_score=True)
        if refit == "bag":
            from training.bagging import average_boosters

            self.booster_ = average_boosters(cv["cvbooster"].boosters, rounds)
        elif refit == "single":
            trained = lgb.train(params, pool_set, num_boost_round=rounds)
            self.booster_ = lgb.Booster(model_str=trained.model_to_string(num_iteration=rounds))
        else:
            raise ModelError(f"refit must be 'bag' or 'single'. Got {refit!r} instead.")
        self.best_iteration_ = rounds
        held = folds.held_out
        self.calibrator_, self.calibration_brier_ = fit_calibrator(
            oof[held], y_pool[held], method=self.calibration, random_state=self.random_state
        )
        if self.grading is None:
            self.grading = grading_from_scores(self.calibrator_.predict(oof[held]),
                                               self.grade_shares)
        self.crossfit_ = {
            **folds.summary(), "cv_rounds": rounds, "cv_refit": refit,
            "cv_auc_mean": float(cv["valid auc-mean"][rounds - 1]),
            "cv_auc_std": float(cv["valid auc-stdv"][rounds - 1]),
            "oof_roc_auc": float(safe_auc(y_pool[held], oof[held])),
            "calibration_rows": held,
        }
        return self

    def _cv(self, params: Mapping[str, Any], pool_set: lgb.Dataset, folds: Any) -> tuple[dict, int]:
        """``lightgbm.cv`` over ``folds``, early-stopped on the mean held-out AUC."""
        cv = lgb.cv(
            dict(params), pool_set, num_boost_round=self.num_boost_round,
            folds=[(f.fit, f.held) for f in folds.folds],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True,
                                          verbose=False)],
            return_cvbooster=True,
        )
        return cv, int(cv["cvbooster"].best_iteration or len(cv["valid auc-mean"]))

    def _train_early_stopped(self, params: Mapping[str, Any], train_set: lgb.Dataset,
                             valid_set: lgb.Dataset) -> tuple[lgb.Booster, int]:
        trained = lgb.train(
            dict(params), train_set, num_boost_round=self.num_boost_round,
            valid_sets=[valid_set], valid_names=["valid"],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True,
                                         verbose=False)],
        )
        return trained, int(trained.best_iteration or trained.current_iteration())

    def search_objective(
        self,
        X_fit: pd.DataFrame,
        y_fit: np.ndarray,
        *,
        folds: Any = None,
        X_valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | None = None,
    ) -> tuple[Any, str]:
        """The held-out figure a fit with other parameters would reach, as a function.

        With ``folds`` (a cross-fit pool): the mean held-out ROC AUC of those folds at
        the early-stopped round count, exactly as :meth:`fit_crossfit` chooses rounds.
        Without: the validation window's ROC AUC of a booster trained on ``X_fit`` and
        early-stopped on it, as :meth:`fit` does. The matrices are prepared once; each
        call costs one cross-validation or one training. Returns the function (parameter
        overrides -> (AUC, rounds)) and a sentence naming the objective.
        """
        from training.evaluate import safe_auc

        y_fit = np.asarray(y_fit, dtype=int)
        self.fit_vocabulary(X_fit)
        fit_set = self._dataset(self.prepare(X_fit), y_fit, pre_filter=False)
        base = self.lgb_params(y_fit)
        if folds is not None:
            def by_folds(overrides: Mapping[str, Any]) -> tuple[float, int]:
                cv, rounds = self._cv({**base, **overrides}, fit_set, folds)
                return float(cv["valid auc-mean"][rounds - 1]), rounds

            return by_folds, f"mean held-out ROC AUC of {len(folds.folds)} {folds.kind} folds"
        if X_valid is None or y_valid is None:
            raise ValueError("search_objective needs folds, or X_valid and y_valid.")
        y_valid = np.asarray(y_valid, dtype=int)
        M_valid = self.prepare(X_valid)
        valid_set = self._dataset(M_valid, y_valid, reference=fit_set, pre_filter=False)

        def by_window(overrides: Mapping[str, Any]) -> tuple[float, int]:
            booster, rounds = self._train_early_stopped({**base, **overrides}, fit_set, valid_set)
            margin = booster.predict(M_valid, num_iteration=rounds, raw_score=True)
            return float(safe_auc(y_valid, margin)), rounds

        return by_window, "ROC AUC on the validation window"

    def _dataset(
        self, X: np.ndarray, y: np.ndarray, reference: lgb.Dataset | None = None,
        *, pre_filter: bool = True,
    ) -> lgb.Dataset:
        # pre_filter=False lets one Dataset serve trials with different min_data_in_leaf
        # (LightGBM otherwise rebuilds it, logging a "Fatal" line each time). It only
        # skips dropping features no split could use, so the trees are the same.
        return lgb.Dataset(
            X,
            label=y,
            feature_name=self.feature_names,
            categorical_feature=self.categorical_features or "auto",
            reference=reference,
            free_raw_data=False,
            params={"verbose": -1, **({} if pre_filter else {"feature_pre_filter": False})},
        )

    # --------------------------------------------------------------- predicting

    def _check_fitted(self, attribute: str = "calibrator_") -> None:
        if not hasattr(self, attribute):
            raise ModelError(
                "This LeadModel instance is not fitted yet. Call 'fit' with training "
                "and validation rows before using it to predict."
            )

    def prepare(self, X: pd.DataFrame | Mapping[str, Sequence[Any]]) -> np.ndarray:
        """The model matrix: float64, columns in ``feature_names`` order.

        Categories become their code in the fitted vocabulary; unseen or missing ones
        become NaN. Numbers that are not numbers become NaN. Works on a DataFrame or a
        mapping of column to values (the cheaper form for one row).
        """
        self._check_fitted("categories_")
        missing = [n for n in self.feature_names if n not in X]
        if missing:
            raise ModelError(
                f"The frame to score lacks feature columns {missing}; expected every one "
                f"of the model's {len(self.feature_names)} features."
            )
        n = len(X) if isinstance(X, pd.DataFrame) else len(next(iter(X.values()), ()))
        out = np.empty((n, len(self.feature_names)), dtype=np.float64)
        for j, name in enumerate(self.feature_names):
            col = X[name]
            codes = self._code_maps_.get(name)
            if codes is not None:
                # Dict lookups beat pd.Categorical for the one-row requests serving sends.
                values = col.tolist() if hasattr(col, "tolist") else list(col)
                out[:, j] = [codes.get(category_key(v), np.nan) for v in values]
            else:
                out[:, j] = _as_float(col)
        return out

    def raw_margin(self, X: pd.DataFrame | Mapping[str, Sequence[Any]]) -> np.ndarray:
        """LightGBM's raw score (log-odds of the *weighted* model, before calibration)."""
        self._check_fitted("booster_")
        return self.booster_.predict(self.prepare(X), raw_score=True)

    def predict_proba(self, X: pd.DataFrame | Mapping[str, Sequence[Any]]) -> np.ndarray:
        """Calibrated P(convert within the horizon), shape (n,)."""
        self._check_fitted()
        return self.calibrator_.predict(self.raw_margin(X))

    def contributions(
        self, X: pd.DataFrame | Mapping[str, Sequence[Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """TreeSHAP contributions in raw log-odds: ``(per_feature (n, k), base (n,))``.

        ``per_feature.sum(axis=1) + base`` equals :meth:`raw_margin`. They explain the
        uncalibrated margin; the calibrator is monotone, so signs and ranks carry over.
        """
        self._check_fitted("booster_")
        matrix = self.prepare(X)
        fast = self._tree_shap() if len(matrix) >= FAST_MIN_ROWS else None
        if fast is not None:
            contrib = fast.contributions(matrix)
        else:
            contrib = self.booster_.predict(matrix, pred_contrib=True)
        return contrib[:, :-1], contrib[:, -1]

    def use_explainer(self, explainer: Explainer = "fast") -> LeadModel:
        """Choose how :meth:`contributions` computes TreeSHAP, and build it now.

        Loaders call this once per loaded model (``serving.lifecycle.mlflow_loader``,
        from ``LEADSCORE_EXPLAINER``) so that the fast explainer's per-model tables are
        built at load time, never on a request. A model that nobody configured uses the
        fast explainer, built on its first explanation. A booster the fast explainer
        cannot handle (multiclass, linear trees) is explained by ``pred_contrib``, with
        a warning.
        """
        if explainer not in EXPLAINERS:
            raise ValueError(
                f"The 'explainer' parameter of LeadModel.use_explainer must be one of "
                f"{list(EXPLAINERS)}. Got {explainer!r} instead.")
        self._check_fitted("booster_")
        self._explainer = explainer
        self._fast = None
        if explainer == "fast":
            from training.treeshap import TreeShap, UnsupportedModel

            try:
                self._fast = TreeShap(self.booster_)
            except UnsupportedModel as exc:
                logger.warning("the fast explainer cannot explain this model (%s); "
                               "using LightGBM's pred_contrib", exc)
                self._explainer = "pred_contrib"
        return self

    @property
    def explainer(self) -> str:
        """``fast`` or ``pred_contrib``: what :meth:`contributions` uses."""
        return getattr(self, "_explainer", "fast")

    def _tree_shap(self) -> Any:
        if self.explainer != "fast":
            return None
        if getattr(self, "_fast", None) is None:
            with _BUILD_LOCK:  # concurrent first calls build it once
                if getattr(self, "_fast", None) is None:
                    self.use_explainer("fast")
        return self._fast

    def predict_margin_and_contributions(
        self, X: pd.DataFrame | Mapping[str, Sequence[Any]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(probability, per_feature, base)`` from a single pass over the trees."""
        self._check_fitted()
        per_feature, base = self.contributions(X)
        return self.calibrator_.predict(per_feature.sum(axis=1) + base), per_feature, base

    def grade(self, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(score, grade, route)`` for calibrated probabilities."""
        self._check_fitted()
        score = score_from_probability(probability)
        grade = self.grading.grade(score)
        return score, grade, self.grading.route(grade)

    @property
    def calibration_method(self) -> str:
        self._check_fitted()
        return self.calibrator_.method

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        """Booster importance per feature, largest first."""
        self._check_fitted()
        imp = self.booster_.feature_importance(importance_type=importance_type)
        return pd.Series(imp, index=self.feature_names).sort_values(ascending=False)

    def fit_matrix(self, X: pd.DataFrame, *, max_rows: int = 5000) -> LeadModel:
        """Fit :attr:`fit_engagement` on training rows ``X`` (at most ``max_rows`` of them,
        a seeded sample): each part's distribution, from the model's own TreeSHAP."""
        from features.matrix import FitEngagement

        self._check_fitted("booster_")
        if len(X) > max_rows:
            X = X.sample(max_rows, random_state=self.random_state)
        contrib, _ = self.contributions(X)
        self.fit_engagement = FitEngagement.fit(self._groups(), contrib).to_dict()
        self._matrix = None
        return self

    def _groups(self) -> dict[str, str]:
        """Each input's group; a column outside the feature set (an allowed leaky one) is
        a lead column, so fit."""
        try:
            known = self.feature_set().groups()
        except ValueError:
            known = {}
        return {name: known.get(name, "fit") for name in self.feature_names}

    def matrix(self) -> Any:
        """The model's :class:`features.matrix.FitEngagement` (built once per loaded model).

        A model trained before it was shipped gets its groups from its feature set and no
        reference: its parts add up all the same, its 0-100 part scores are None.
        """
        cached = getattr(self, "_matrix", None)
        if cached is None:
            from features.matrix import FitEngagement

            data = getattr(self, "fit_engagement", None) or {}
            cached = (FitEngagement.from_dict(data) if data
                      else FitEngagement(self._groups()))
            if list(cached.groups) != self.feature_names:
                raise ModelError("the model's fit/engagement groups do not name its features "
                                 "in order; retrain")
            self._matrix = cached
        return cached

    def feature_set(self) -> FeatureSet:
        """The feature set this model's inputs come from, rebuilt from its definition.

        A model trained before feature sets were recorded has the built-in one. Raises
        ``ValueError`` when the definition no longer gives the recorded version (the
        feature code changed since training).
        """
        definition = getattr(self, "feature_set_definition", None) or {
            "name": "builtin", "version": self.feature_set_version}
        cached = getattr(self, "_feature_set", None)
        if cached is None:
            cached = FeatureSet.from_json(definition)
            self._feature_set = cached
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_feature_set", None)  # functions and closures: rebuilt from the definition
        state.pop("_matrix", None)  # rebuilt from fit_engagement
        # The explainer is the loading process's choice, and its tables are rebuilt from
        # the booster in a second or two at load time: neither is shipped in the artifact.
        state.pop("_fast", None)
        state.pop("_explainer", None)
        # A search's trials are in the training run (training.tune.log_trials); the
        # chosen parameters are in ``params``.
        state.pop("tuning_", None)
        return state

    def __repr__(self) -> str:
        state = (f"fitted, {self.best_iteration_} trees, {self.calibrator_.method}"
                 if hasattr(self, "calibrator_") else "not fitted")
        return (f"LeadModel({len(self.feature_names)} features, "
                f"feature_set_version={self.feature_set_version!r}, {state})")


_BUILD_LOCK = threading.Lock()


def category_key(value: Any) -> str | None:
    """How a categorical value is matched: trimmed and case-folded; None when missing.

    The one place categories are normalised for the model: CRMs and API callers write
    "Software", "software" and "SOFTWARE " for the same industry. Non-str values
    compare as their ``str``; NaN, None, NA and blanks are missing.
    """
    if isinstance(value, str):
        key = value.strip().casefold()
    elif value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    else:
        key = str(value).strip().casefold()
    return key or None


def _as_float(col: Any) -> np.ndarray:
    if isinstance(col, pd.Series):
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(list(col)), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)

