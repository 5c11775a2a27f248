"""Training time: ``LeadModel.fit`` against a bare LightGBM fit on the same matrix.

For each size, a synthetic CRM is generated, turned into a training set by the real
builder and split by time like ``leadscore train``. Then, in this process:

- **leadscore**: ``LeadModel.fit`` (vocabularies, preparation, LightGBM with early
  stopping on validation AUC, calibrator selection by cross-validated Brier, grading);
- **bare**: ``lightgbm.train`` with the same parameters on the same prepared matrix,
  for the same number of boosting rounds the LeadModel ran (best iteration + patience),
  no validation set, no calibration: the least any LightGBM model must do.

The ratio leadscore/bare is taken on CPU time of this process (the machine is shared;
wall time is reported too). Usage::

    OMP_NUM_THREADS=1 nice uv run python benchmarks/training_time.py [--sizes 5000,10000,20000]

Writes ``benchmarks/out/training_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def one(n_leads: int, seed: int) -> dict:
    import lightgbm as lgb
    import numpy as np

    from features.synthetic import GeneratorConfig, generate_to_dir
    from training.model import LeadModel
    from training.pipeline import training_data_from_dir
    from training.split import time_split

    with tempfile.TemporaryDirectory(prefix="leadscore-train-bench-") as tmp:
        generate_to_dir(GeneratorConfig(n_leads=n_leads, seed=seed, truth_paths=1), tmp)
        data = training_data_from_dir(tmp)
    frame = data.frame.reset_index(drop=True)
    y = frame["label"].to_numpy(dtype=int)
    split = time_split(frame["as_of"], y, horizon=data.purge_gap)
    names = list(data.schema.names)
    X_train, X_valid = frame.iloc[split.train][names], frame.iloc[split.valid][names]
    y_train, y_valid = y[split.train], y[split.valid]

    model = LeadModel(names, list(data.schema.categorical), data.schema.version)
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(X_train, y_train, X_valid, y_valid)
    fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    rounds = min(model.best_iteration_ + model.early_stopping_rounds, model.num_boost_round)

    matrix = model.prepare(X_train)  # prepared outside the timing: bare gets it for free
    wall, cpu = time.perf_counter(), time.process_time()
    train_set = lgb.Dataset(matrix, label=y_train, feature_name=names,
                            categorical_feature=model.categorical_features or "auto",
                            params={"verbose": -1})
    lgb.train(model.lgb_params(y_train), train_set, num_boost_round=rounds)
    bare_wall, bare_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"leads": n_leads, "train_rows": int(len(X_train)), "valid_rows": int(len(X_valid)),
            "features": len(names), "rounds": int(rounds),
            "leadscore_wall_s": round(fit_wall, 3), "leadscore_cpu_s": round(fit_cpu, 3),
            "bare_wall_s": round(bare_wall, 3), "bare_cpu_s": round(bare_cpu, 3),
            "ratio_cpu": round(fit_cpu / max(bare_cpu, 1e-9), 2),
            "ratio_wall": round(fit_wall / max(bare_wall, 1e-9), 2),
            "train_rows_per_cpu_s": round(len(X_train) / max(fit_cpu, 1e-9)),
            "converted_share": float(np.mean(y))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,10000,20000")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        r = one(size, args.seed)
        results.append(r)
        print(f"{size:>8,} leads, {r['train_rows']:>8,} train rows, {r['rounds']:>4} rounds: "
              f"leadscore cpu {r['leadscore_cpu_s']:.2f} s, bare cpu {r['bare_cpu_s']:.2f} s "
              f"-> {r['ratio_cpu']:.2f}x", flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "training_time.json").write_text(json.dumps(
        {"cpu_count": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
