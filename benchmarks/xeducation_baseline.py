"""Does the X Education example spec reproduce the data README's reference AUCs?

Default ``lightgbm.LGBMClassifier``, stratified 5-fold CV ROC AUC, on:

1. the spec's features (form and web data only): the README reports 0.872 ± 0.005;
2. the same plus ``Tags`` (un-marked as leaky): the leak, far above 0.95;
3. one stratified 20% hold-out on the spec's features, the split training uses for
   exports without timestamps (the training issue asks for ≥ 0.88 there).

Run (nice it; the machine is shared)::

    nice -n 10 uv run python benchmarks/xeducation_baseline.py [--data PATH/Leads.csv]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from features.spec import SpecDataset, example_spec_path, load_dataset, load_spec

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "x-education" / "Leads.csv"


def model_inputs(data: SpecDataset) -> tuple[pd.DataFrame, np.ndarray]:
    """Features as LightGBM wants them: categorical columns as pandas ``category``."""
    x = data.frame[data.features].copy()
    for name in data.categorical:
        x[name] = x[name].astype("category")
    return x, data.frame["label"].to_numpy()


# A hand-picked slower, smaller-leaf configuration (not a search), to see whether the
# training issue's >= 0.88 hold-out target is within reach of tuning alone.
TUNED = {
    "learning_rate": 0.02,
    "n_estimators": 600,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.7,
    "cat_smooth": 20,
    "min_data_per_group": 50,
}


def cv_auc(
    x: pd.DataFrame, y: np.ndarray, *, seed: int = 0, params: dict | None = None
) -> tuple[float, float]:
    """Mean and standard deviation of stratified 5-fold ROC AUC (default LGBM unless params)."""
    aucs = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
        model = lgb.LGBMClassifier(verbose=-1, n_jobs=2, random_state=seed, **(params or {}))
        model.fit(x.iloc[train], y[train])
        aucs.append(roc_auc_score(y[test], model.predict_proba(x.iloc[test])[:, 1]))
    return float(np.mean(aucs)), float(np.std(aucs))


def holdout_auc(x: pd.DataFrame, y: np.ndarray, *, seed: int) -> float:
    """ROC AUC on one stratified 20% hold-out with a default LGBM."""
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    model = lgb.LGBMClassifier(verbose=-1, n_jobs=2, random_state=seed).fit(x_tr, y_tr)
    return float(roc_auc_score(y_te, model.predict_proba(x_te)[:, 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    # LightGBM warns about pandas categoricals it re-maps; not what is measured here.
    warnings.filterwarnings("ignore", category=UserWarning)

    spec = load_spec(example_spec_path("x-education"))
    start = time.perf_counter()
    data = load_dataset(spec, args.data)
    print(
        f"loaded {len(data.frame):,} rows through the spec in {time.perf_counter() - start:.2f}s; "
        f"label rate {data.label_rate:.3f}; {len(data.features)} features"
    )

    x, y = model_inputs(data)
    mean, std = cv_auc(x, y)
    print(
        f"spec features (form + web)   5-fold ROC AUC {mean:.3f} ± {std:.3f}   (README 0.872 ± 0.005)"
    )

    leaky = model_inputs(load_dataset(spec.with_role("Tags", "categorical"), args.data))
    mean, std = cv_auc(*leaky)
    print(
        f"spec features + Tags         5-fold ROC AUC {mean:.3f} ± {std:.3f}   (leak; README ~0.98 with all)"
    )

    mean, std = cv_auc(x, y, params=TUNED)
    print(f"spec features, tuned LGBM    5-fold ROC AUC {mean:.3f} ± {std:.3f}")

    everything = spec
    for entry in spec.columns.leaky:
        everything = everything.with_role(entry.column, "categorical")
    mean, std = cv_auc(*model_inputs(load_dataset(everything, args.data)))
    print(f"all 34 columns (leaky too)   5-fold ROC AUC {mean:.3f} ± {std:.3f}   (README 0.984)")

    holdouts = [holdout_auc(x, y, seed=s) for s in range(5)]
    print(
        "spec features, stratified 20% hold-out, seeds 0-4: "
        + ", ".join(f"{a:.3f}" for a in holdouts)
        + f"   (mean {np.mean(holdouts):.3f})"
    )


if __name__ == "__main__":
    main()
