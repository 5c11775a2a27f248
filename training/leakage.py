"""Leakage audit: features that predict the label too well, or too alone, to be honest.

Before training, the audit looks at every feature on the training window (never the
test window) and flags it by any of four rules. Flagged columns, and columns a
dataset spec marks ``leaky``, are reported in the run (``leakage/audit.csv``: rule,
figures, one sentence each) and excluded, unless the spec marks them ``trusted`` or
the user passes ``--allow-leaky COLUMN``.

Rules (each figure is out-of-fold, so that a column cannot score by memorising):

``single_auc``
    The feature alone has ROC AUC ``>= 0.90`` (:data:`LEAK_THRESHOLD`): no single CRM
    field honestly separates converters that well. The usual cause is a field filled
    in by sales *after* the outcome (X Education's ``Tags``).
``beats_rest``
    The feature alone (both its binned AUC and a small LightGBM on it alone) beats the
    same small LightGBM of *every other feature together*, on the same folds, by
    :data:`BEATS_REST_MARGIN` or more (and is itself at least :data:`BEATS_REST_FLOOR`;
    with at least three other features whose model reaches :data:`REST_SIGNAL`, else
    there is no "rest" to beat).
    Honest strong features have siblings (engagement counts correlate with each other,
    fit attributes with each other), so removing one costs the rest little; a column
    computed from the outcome has no sibling and stands alone. This catches leaks far
    below 0.90 (a "page value" at 0.86 alone against 0.77 for the rest).
    "The rest" is judged at the better of its model and its best single column alone
    (``best_other_auc``): on a small base the quick model of sixty columns can rank
    below one of them alone, and then an honest feature "beats" a rest that its own
    sibling beats too (a 5,000-lead synthetic CRM: ``engagement_decayed_hl7d`` at 0.695
    alone against a rest model at 0.666, with ``engagement_decayed_hl30d`` at 0.679).
``gain_share``
    The feature carries :data:`GAIN_SHARE_THRESHOLD` or more of the total split gain
    of a quick LightGBM on all features, and its single AUC is at least
    :data:`BEATS_REST_FLOOR` (with three other features or more): the model would rest
    on one column.
``missing_after_contact``
    The feature is missing far more often among non-converters than among converters
    (a gap of :data:`MISSING_GAP` or more and a ratio of :data:`MISSING_RATIO` or more),
    and its missingness alone has ROC AUC of at least :data:`MISSING_AUC`: the field is
    filled in once sales engages the lead, which mostly happens to those who convert.
    "No activity yet" missingness (days since the last visit) is honest and weaker.

Thresholds were calibrated on the examples the project has (X Education with no
post-contact column declared leaky, OULAD, synthetic CRMs); ``benchmarks/leakage_audit.py``
prints every figure of every column, and the README states the false positives and
negatives measured.

How one feature gets a score to rank by (``single_auc``):

- numeric: the value itself (missing values rank lowest); and, to catch non-monotone
  leaks and "missing unless converted" patterns, the out-of-fold conversion rate of
  its quantile bin (missing is a bin of its own);
- categorical: the out-of-fold conversion rate of its category (missing is a
  category). Out-of-fold (5 folds, a lead's snapshots in one fold when ``groups`` is
  given) so that a high-cardinality id-like column cannot score well by memorising
  each value's label, and so cannot raise the "best other column" bar of
  ``beats_rest`` either.

The audit subsamples to ``max_rows`` stratified rows (``model_rows`` for the quick
LightGBM models): AUCs at that size are accurate to about 0.005, far finer than any
threshold here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from training.evaluate import safe_auc

__all__ = ["LEAK_THRESHOLD", "BEATS_REST_MARGIN", "BEATS_REST_FLOOR", "REST_SIGNAL",
           "GAIN_SHARE_THRESHOLD",
           "MISSING_GAP", "MISSING_RATIO", "MISSING_AUC", "RULES", "LeakageReport",
           "audit_leakage"]

LEAK_THRESHOLD = 0.90
BEATS_REST_MARGIN = 0.02
BEATS_REST_FLOOR = 0.70
GAIN_SHARE_THRESHOLD = 0.45
MISSING_GAP = 0.30
MISSING_RATIO = 3.0
MISSING_AUC = 0.70

RULES = ("declared", "single_auc", "beats_rest", "gain_share", "missing_after_contact")
"""Every reason a column can be flagged, in the order the table reports them."""

# The two model rules compare a feature with the others: they need others to compare
# with. With fewer than this many other candidates, or a rest model that is no better
# than chance (below REST_SIGNAL), one honest feature among noise would "beat the rest".
_MIN_OTHERS = 3
REST_SIGNAL = 0.60

# How many of the strongest single features get a model of "all the others" fitted:
# a feature far down the single-AUC ranking cannot beat the rest.
_REST_CANDIDATES = 4

# A quick model that must not overfit: "the rest" has to be judged at its honest best,
# or a single feature beats it by the rest model's overfitting alone (seen on
# synthetic CRMs with 15-leaf trees at a learning rate of 0.1).
_QUICK_PARAMS = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 100,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 10.0,
    "cat_smooth": 50.0, "cat_l2": 20.0, "min_data_per_group": 100, "max_cat_threshold": 16,
    # One thread: these models are small, and on a shared machine OpenMP threads that
    # wait for a busy core made an audit 7x slower (3.7 s against 0.5 s).
    "verbose": -1, "num_threads": 1,
}
_QUICK_ROUNDS = 200

_COLUMNS = ["feature", "kind", "auc", "auc_raw", "auc_binned", "alone_auc", "rest_auc",
            "best_other_auc", "gain_share",
            "missing_pos", "missing_neg", "missing_auc", "declared_leaky", "trusted", "rules",
            "suspect", "excluded", "sentence"]


@dataclass(frozen=True)
class LeakageReport:
    """Per-feature figures, the rules that flagged each column, and what to exclude."""

    table: pd.DataFrame
    """One row per feature: feature, kind, auc (max of auc, 1-auc), auc_raw, auc_binned,
    alone_auc and rest_auc (OOF AUC of the quick model on the feature alone and on all
    other features; only for the strongest candidates), best_other_auc (the highest
    single-column auc among those other features), gain_share (share of a quick model's gain), missing_pos / missing_neg
    (missing rate among converters / non-converters), missing_auc (AUC of the
    missingness alone), declared_leaky, trusted, rules (the rules that flagged it,
    comma-separated), suspect (flagged by a data rule), excluded, sentence."""
    excluded: tuple[str, ...]
    flagged: tuple[str, ...]
    threshold: float
    all_others_auc: float = float("nan")
    """OOF ROC AUC of the quick model of all features (declared leaky ones left out)."""

    def to_tags(self) -> dict[str, str]:
        return {
            "leakage.flagged": ",".join(self.flagged) or "none",
            "leakage.excluded": ",".join(self.excluded) or "none",
            "leakage.threshold": f"{self.threshold:.2f}",
        }

    def flagged_table(self) -> pd.DataFrame:
        """The flagged rows only, with the columns a reader needs."""
        keep = ["feature", "rules", "auc", "alone_auc", "rest_auc", "best_other_auc",
                "gain_share", "missing_pos",
                "missing_neg", "excluded", "sentence"]
        flagged = self.table["rules"] != ""
        return self.table.loc[flagged, keep].reset_index(drop=True)


def _rate_folds(y: np.ndarray, seed: int,
                groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of :func:`_oof_rate`, made once for every column of an audit.

    With ``groups`` (a lead per row) a lead's snapshots share a fold: otherwise a
    column that names the lead scores by recognising it from its other snapshots.
    """
    n_splits = int(min(5, max(2, min(y.sum(), len(y) - y.sum()))))
    rows = np.zeros((len(y), 1))
    if groups is not None:
        n_splits = int(max(2, min(n_splits, len(np.unique(groups)))))
        return list(StratifiedGroupKFold(n_splits=n_splits, shuffle=True,
                                         random_state=seed).split(rows, y, groups))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True,
                                random_state=seed).split(rows, y))


def _oof_rate(codes: np.ndarray, y: np.ndarray,
              folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Out-of-fold mean label per code, shrunk towards the fold's base rate."""
    out = np.empty(len(y), dtype=float)
    for fit_idx, held_idx in folds:
        fit = pd.DataFrame({"c": codes[fit_idx], "y": y[fit_idx]}).groupby("c")["y"]
        prior, k = y[fit_idx].mean(), 10.0
        rate = (fit.sum() + prior * k) / (fit.count() + k)
        out[held_idx] = pd.Series(codes[held_idx]).map(rate).fillna(prior).to_numpy()
    return out


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    auc = safe_auc(y, score)
    return float("nan") if np.isnan(auc) else max(auc, 1.0 - auc)


def _subsample(n_rows: int, y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if n_rows <= limit:
        return np.arange(n_rows)
    keep, _ = train_test_split(np.arange(n_rows), train_size=limit, stratify=y,
                               random_state=seed)
    return np.sort(keep)


def _model_matrix(X: pd.DataFrame, categorical: set[str]) -> pd.DataFrame:
    """Numbers as float, categories as small integer codes (missing = NaN)."""
    out = {}
    for name in X.columns:
        if name in categorical:
            codes = pd.Categorical(X[name].astype("string")).codes.astype(float)
            codes[codes < 0] = np.nan
            out[name] = codes
        else:
            out[name] = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=float,
                                                                        na_value=np.nan)
    return pd.DataFrame(out, index=X.index)


def _quick_oof(M: pd.DataFrame, y: np.ndarray, categorical: list[str], seed: int,
               groups: np.ndarray | None = None) -> tuple[float, pd.Series]:
    """OOF ROC AUC (3 folds) of a quick LightGBM on ``M`` and its mean gain per feature.

    With ``groups`` (a lead id per row), the snapshots of one lead stay in one fold:
    otherwise a model of many features recognises the lead and looks far better than
    it is, which would hide a leak behind "the rest".
    """
    if M.shape[1] == 0:
        return 0.5, pd.Series(dtype=float)
    oof = np.empty(len(y))
    gain = np.zeros(M.shape[1])
    cats = [c for c in categorical if c in M.columns]
    if groups is not None:
        splits = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=seed).split(
            M, y, groups)
    else:
        splits = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed).split(M, y)
    for fit_idx, held_idx in splits:
        ds = lgb.Dataset(M.iloc[fit_idx], label=y[fit_idx], categorical_feature=cats or "auto",
                         params={"verbose": -1}, free_raw_data=False)
        booster = lgb.train({**_QUICK_PARAMS, "seed": seed}, ds, num_boost_round=_QUICK_ROUNDS)
        oof[held_idx] = booster.predict(M.iloc[held_idx], raw_score=True)
        gain += booster.feature_importance(importance_type="gain")
    return float(safe_auc(y, oof)), pd.Series(gain / max(gain.sum(), 1e-12), index=M.columns)


def _sentence(row: dict, threshold: float) -> str:
    name, parts = row["feature"], []
    rules = row["rules"].split(",") if row["rules"] else []
    if "declared" in rules:
        parts.append("the dataset spec marks it leaky")
    if "single_auc" in rules:
        parts.append(f"alone it separates converters with ROC AUC {row['auc']:.3f} "
                     f"(at or above {threshold:.2f}, more than any honest CRM field)")
    if "beats_rest" in rules:
        parts.append(f"alone it scores ROC AUC {min(row['auc'], row['alone_auc']):.3f}, more "
                     "than a model of every "
                     f"other feature together ({row['rest_auc']:.3f}) and than any of them "
                     f"alone ({row['best_other_auc']:.3f})")
    if "gain_share" in rules:
        parts.append(f"it carries {row['gain_share']:.0%} of a quick model's gain")
    if "missing_after_contact" in rules:
        parts.append(f"it is missing for {row['missing_neg']:.0%} of non-converters but only "
                     f"{row['missing_pos']:.0%} of converters, as if filled in after contact")
    if not parts:
        return ""
    action = "kept: " + ("the spec marks it trusted" if row["trusted"] else "allowed by the user")
    if row["excluded"]:
        action = "excluded from the model"
    return f"{name}: " + "; ".join(parts) + f". {action[0].upper() + action[1:]}."


def audit_leakage(
    X: pd.DataFrame,
    y: np.ndarray,
    categorical: Sequence[str],
    *,
    declared_leaky: Sequence[str] = (),
    allow: Sequence[str] = (),
    trusted: Sequence[str] = (),
    threshold: float = LEAK_THRESHOLD,
    max_rows: int = 200_000,
    model_rows: int = 20_000,
    groups: Sequence[object] | None = None,
    random_state: int = 0,
) -> LeakageReport:
    """Flag leaky columns of ``X`` by the rules of the module docstring.

    ``declared_leaky`` columns (e.g. a spec's ``leaky`` role) are always flagged,
    whether or not they are in ``X``, and never enter the quick models (they are not
    candidate features). Flagged columns are excluded unless in ``allow`` (the user's
    ``--allow-leaky``) or ``trusted`` (the spec's ``trusted: true``). A declared leaky
    column stays excluded even when trusted: the spec cannot say both. ``groups`` (the
    lead id of each row of a snapshot set) keeps a lead's rows in one fold of the
    quick models.
    """
    y = np.asarray(y, dtype=int)
    keep = _subsample(len(y), y, max_rows, random_state)
    X, y = X.iloc[keep], y[keep]
    group_codes = (None if groups is None
                   else pd.factorize(pd.Series(np.asarray(groups, dtype=object)[keep]))[0])
    categorical = set(categorical)
    declared = set(declared_leaky)
    rate_folds = _rate_folds(y, random_state, group_codes)
    rows = []
    for name in X.columns:
        col = X[name]
        if name in categorical:
            codes = col.astype("string").fillna("\x00missing").to_numpy(dtype=object)
            missing = col.isna().to_numpy()
            auc_raw = float("nan")
            auc_binned = _auc(y, _oof_rate(codes, y, rate_folds))
            kind = "categorical"
        else:
            v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(v)
            filled = np.where(missing, np.nanmin(v) - 1 if (~missing).any() else 0, v)
            auc_raw = _auc(y, filled)
            ranks = pd.Series(v).rank(pct=True).to_numpy()
            # Quantile bin 0-19 of the value; -1 for missing (cast after filling NaN).
            codes = np.minimum(np.nan_to_num(ranks * 20, nan=-1.0).astype(int), 19)
            auc_binned = _auc(y, _oof_rate(codes, y, rate_folds))
            kind = "numeric"
        pos = y == 1
        rows.append({
            "feature": name, "kind": kind, "auc_raw": auc_raw, "auc_binned": auc_binned,
            "missing_pos": float(missing[pos].mean()) if pos.any() else np.nan,
            "missing_neg": float(missing[~pos].mean()) if (~pos).any() else np.nan,
            "missing_auc": _auc(y, missing.astype(float)) if missing.any() else 0.5,
        })
    table = pd.DataFrame(rows, columns=["feature", "kind", "auc_raw", "auc_binned",
                                        "missing_pos", "missing_neg", "missing_auc"])
    table["auc"] = table[["auc_raw", "auc_binned"]].max(axis=1)
    table["rest_auc"] = np.nan
    table["alone_auc"] = np.nan
    table["best_other_auc"] = np.nan
    table["gain_share"] = np.nan
    rules: dict[str, list[str]] = {name: [] for name in table["feature"]}

    # Rule single_auc.
    for row in table.itertuples():
        if row.feature in declared:
            rules[row.feature].append("declared")
        if row.auc >= threshold:
            rules[row.feature].append("single_auc")
        gap = row.missing_neg - row.missing_pos
        if (gap >= MISSING_GAP and row.missing_neg >= MISSING_RATIO * row.missing_pos
                and row.missing_auc >= MISSING_AUC):
            rules[row.feature].append("missing_after_contact")

    # Quick models on the candidates (declared leaky columns are not candidates).
    candidates = [n for n in X.columns if n not in declared]
    all_auc = float("nan")
    if candidates and min(y.sum(), len(y) - y.sum()) >= 10:
        sub = _subsample(len(y), y, model_rows, random_state)
        M, y_m = _model_matrix(X.iloc[sub][candidates], categorical), y[sub]
        g_m = None if group_codes is None else group_codes[sub]
        cats = [c for c in candidates if c in categorical]
        all_auc, gain = _quick_oof(M, y_m, cats, random_state, g_m)
        table["gain_share"] = table["feature"].map(gain)
        # Rule beats_rest: the strongest single features, each against all the others
        # except those already flagged by the single-AUC rule (one obvious leak in "the
        # rest" would otherwise hide a second one).
        flagged_single = {n for n, r in rules.items() if "single_auc" in r}
        ranked = table[table["feature"].isin(candidates)].sort_values("auc", ascending=False)
        for row in ranked.head(_REST_CANDIDATES).itertuples():
            if row.auc < BEATS_REST_FLOOR or len(candidates) - 1 < _MIN_OTHERS:
                continue
            rest = [c for c in candidates if c != row.feature and c not in flagged_single]
            rest_auc, _ = _quick_oof(M[rest], y_m, [c for c in cats if c in rest],
                                     random_state, g_m)
            # The feature alone through the same quick model and folds: like against like.
            alone_auc, _ = _quick_oof(M[[row.feature]], y_m,
                                      [row.feature] if row.feature in cats else [],
                                      random_state, g_m)
            # The rest is at least as strong as its best column alone: the quick model
            # of many columns on few rows can fall below that, and must not be the bar.
            best_other = float(table.loc[table["feature"].isin(rest), "auc"].max())
            bar = np.fmax(rest_auc, best_other)  # no rest column: the rest model alone
            at = table["feature"] == row.feature
            table.loc[at, "rest_auc"] = rest_auc
            table.loc[at, "alone_auc"] = alone_auc
            table.loc[at, "best_other_auc"] = best_other
            if (rest_auc >= REST_SIGNAL
                    and min(row.auc, alone_auc) >= bar + BEATS_REST_MARGIN):
                rules[row.feature].append("beats_rest")
                flagged_single.add(row.feature)
        for row in table.itertuples():
            if (not np.isnan(row.gain_share) and row.gain_share >= GAIN_SHARE_THRESHOLD
                    and row.auc >= BEATS_REST_FLOOR and len(candidates) - 1 >= _MIN_OTHERS):
                rules[row.feature].append("gain_share")

    for name in declared_leaky:
        if name not in rules:
            table.loc[len(table)] = {"feature": name, "kind": "declared"}
            rules[name] = ["declared"]
    table["rules"] = table["feature"].map(lambda n: ",".join(r for r in RULES if r in rules[n]))
    table["declared_leaky"] = table["feature"].isin(list(declared))
    table["suspect"] = table["feature"].map(
        lambda n: any(r != "declared" for r in rules[n])).astype(bool)
    table["trusted"] = table["feature"].isin(list(trusted))
    flagged_mask = table["rules"] != ""
    table["excluded"] = (flagged_mask & ~table["feature"].isin(list(allow))
                         & ~(table["trusted"] & ~table["declared_leaky"]))
    table["sentence"] = [_sentence(r, threshold) for r in table.to_dict("records")]
    table = table.sort_values("auc", ascending=False, na_position="last").reset_index(drop=True)
    table = table[_COLUMNS]
    return LeakageReport(
        table=table,
        excluded=tuple(table.loc[table["excluded"], "feature"]),
        flagged=tuple(table.loc[table["rules"] != "", "feature"]),
        threshold=threshold,
        all_others_auc=all_auc,
    )
