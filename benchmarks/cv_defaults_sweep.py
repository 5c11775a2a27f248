"""Which LightGBM defaults help X Education, judged by cross-validation only.

For each stratified split seed, the pool is train + validation (the test window is never
read) and the figure is the mean held-out ROC AUC of the same 5 folds ``fit_model``
cross-fits on (:meth:`training.model.LeadModel.search_objective`). The leakage audit's
exclusions are the ones ``benchmarks/training_quality.py`` reported for every seed.

    OMP_NUM_THREADS=1 nice uv run python benchmarks/cv_defaults_sweep.py

Measured 2026-12-03 (mean over 5 seeds, difference to the defaults): min_data_in_leaf 50
-0.0011, 100 -0.0004; num_leaves 15 +0.0001; min_data_per_group 50 +0.0001; cat_smooth 10
+0.0005; cat_l2 5 +0.0001; max_cat_to_onehot 8 -0.0002; the three small-data settings
together -0.0003. None is worth changing the defaults for (CV AUC 0.8770 at the defaults).
This objective (pre_filter=False Dataset) gave 0.8764 at 287 rounds on seed 0, where the
pipeline's fit_model logged 0.8762 at 352: close, not identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EXCLUDED = {"tags", "lead_quality", "last_activity", "last_notable_activity", "lead_profile",
            "asymmetrique_activity_score", "asymmetrique_profile_score",
            "asymmetrique_profile_index", "asymmetrique_activity_index"}

CANDIDATES: dict[str, dict] = {
    "defaults": {},
    "min_data_in_leaf=50": {"min_data_in_leaf": 50},
    "min_data_in_leaf=100": {"min_data_in_leaf": 100},
    "num_leaves=15": {"num_leaves": 15},
    "min_data_per_group=50": {"min_data_per_group": 50},
    "cat_smooth=10": {"cat_smooth": 10.0},
    "cat_l2=5": {"cat_l2": 5.0},
    "max_cat_to_onehot=8": {"max_cat_to_onehot": 8},
    "small-cat (mdl50,mdpg50,cs10)": {"min_data_in_leaf": 50, "min_data_per_group": 50,
                                      "cat_smooth": 10.0},
}


def main() -> None:
    from features.spec import example_spec_path
    from training.crossfit import crossfit_folds
    from training.model import LeadModel
    from training.pipeline import training_data_from_spec
    from training.split import random_split

    csv = REPO.parent / "shared" / "data" / "x-education" / "Leads.csv"
    data = training_data_from_spec(example_spec_path("x-education"), csv)
    frame = data.frame
    y = frame["label"].to_numpy(dtype=int)
    features = [n for n in data.schema.names if n not in EXCLUDED]
    categorical = [n for n in data.schema.categorical if n in features]
    scores: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for seed in range(5):
        split = random_split(y, random_state=seed)
        pool = np.sort(np.concatenate([split.train, split.valid]))
        folds = crossfit_folds(y[pool], n_splits=5, random_state=seed)
        model = LeadModel(features, categorical, data.schema.version, random_state=seed)
        objective, _ = model.search_objective(frame.iloc[pool][features], y[pool], folds=folds)
        for name, overrides in CANDIDATES.items():
            auc, rounds = objective(overrides)
            scores[name].append(auc)
            print(f"seed {seed} {name}: CV AUC {auc:.4f} ({rounds} rounds)", flush=True)
    base = np.array(scores["defaults"])
    for name, values in scores.items():
        v = np.array(values)
        print(f"{name:32s} CV AUC {v.mean():.4f}  vs defaults {np.mean(v - base):+.4f} "
              f"(min {np.min(v - base):+.4f})")


if __name__ == "__main__":
    main()
