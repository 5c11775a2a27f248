"""Benchmark exact TreeSHAP: ``training.treeshap.TreeShap`` against LightGBM's ``pred_contrib``.

    nice uv run python benchmarks/explain.py [--leads 10000] [--trees 300]
        [--sizes 1,10,1000,100000] [--threads 2] [--seconds 2]

A production-like model is trained here: the default ``LeadModel`` parameters (31
leaves, min_data_in_leaf 200, the built-in feature set's ~60 features, native
categoricals) for exactly ``--trees`` trees (no early stopping) on the training set
of ``--leads`` generated leads (cached under ``--work``). Rows to explain are
snapshots of that training set, drawn with replacement up to the largest size.

For each size both explainers run on the same rows with the same thread count,
alternating call by call (so that the load of this shared machine falls on both
alike) until each has had ``--seconds`` (and at least 3 calls; one at 100,000 rows,
which takes minutes through ``pred_contrib``); the medians give rows/s and the ratio. The
fast explainer's values are checked against ``pred_contrib`` at every size (max
absolute difference of the timed calls' values, must be < 1e-9). Also reported: the
one-off cost of building the explainer (its v2 tables) for this model. Should
``pred_contrib`` ever win at small sizes, ``training.model.FAST_MIN_ROWS`` routes
those calls to it; on this machine the fast explainer won at every size.

Results: printed, and ``benchmarks/out/explain.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)  # benchmarks/serving.py would shadow the serving package


def production_like(leads: int, trees: int, work: Path):  # type: ignore[no-untyped-def]
    """(booster, matrix of training-set rows): the default parameters, ``trees`` trees."""
    import lightgbm as lgb

    from features.build import build_training_set
    from features.registry import FEATURE_SET_VERSION, categorical_features, feature_names
    from features.synthetic import GeneratorConfig, generate_to_dir
    from serving.batch import read_inputs
    from training.model import LeadModel

    where = work / f"data-{leads}"
    saved = work / f"model-{leads}-{trees}.txt"
    if not (where / "activities.parquet").is_file():
        generate_to_dir(GeneratorConfig(n_leads=leads, seed=1, truth_sample=0), where)
    frame = build_training_set(*read_inputs(where))
    X, y = frame[feature_names()], frame["label"].to_numpy()
    model = LeadModel(feature_names(), categorical_features(), FEATURE_SET_VERSION)
    model.fit_vocabulary(X)
    params = model.lgb_params(y)
    params.pop("metric", None)
    params.pop("first_metric_only", None)
    matrix = model.prepare(X)
    data = lgb.Dataset(matrix, label=y, feature_name=model.feature_names,
                       categorical_feature=model.categorical_features, params={"verbose": -1})
    if saved.is_file():  # the same parameters and data: reuse the trees of an earlier run
        return lgb.Booster(model_file=str(saved)), matrix
    booster = lgb.train(params, data, num_boost_round=trees)
    booster.save_model(str(saved))
    return booster, matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--sizes", default="1,10,1000,100000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="Time budget of each explainer at each size (at least 3 calls).")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get(
        "LEADSCORE_BENCH_WORK", "/tmp/leadscore-bench-explain")))
    args = parser.parse_args()

    import numpy as np

    from training.treeshap import TreeShap

    sizes = [int(s) for s in args.sizes.split(",")]
    began = time.perf_counter()
    booster, matrix = production_like(args.leads, args.trees, args.work)
    print(f"model: {booster.num_trees()} trees, {booster.num_feature()} features, trained on "
          f"{len(matrix):,} rows in {time.perf_counter() - began:.0f} s", flush=True)
    t = time.perf_counter()
    explainer = TreeShap(booster, num_threads=args.threads)
    build_s = time.perf_counter() - t
    print(f"explainer: {explainer!r}, built in {build_s * 1000:.0f} ms", flush=True)
    rng = np.random.default_rng(0)
    pool = matrix[rng.integers(0, len(matrix), max(sizes))]

    def reference(rows):  # type: ignore[no-untyped-def]
        return booster.predict(rows, pred_contrib=True, num_threads=args.threads)

    def fast(rows):  # type: ignore[no-untyped-def]
        return explainer.contributions(rows, num_threads=args.threads)

    results = []
    for n in sizes:
        rows = pool[:n]
        ref_s, fast_s, last = [], [], {}
        spent = time.perf_counter()
        least = 3 if n <= 10_000 else 1  # 100,000 rows take minutes through pred_contrib
        while len(ref_s) < least or time.perf_counter() - spent < 2 * args.seconds:
            for name, fn, into in (("ref", reference, ref_s), ("fast", fast, fast_s)):
                t = time.perf_counter()
                last[name] = fn(rows)
                into.append(time.perf_counter() - t)
        # The values of the timed calls themselves are compared.
        diff = float(np.abs(last["fast"] - last["ref"]).max())
        ref_med, fast_med = statistics.median(ref_s), statistics.median(fast_s)
        row = {"rows": n, "calls": len(ref_s),
               "pred_contrib_ms": round(ref_med * 1000, 3), "fast_ms": round(fast_med * 1000, 3),
               "pred_contrib_rows_per_s": round(n / ref_med), "fast_rows_per_s": round(n / fast_med),
               "ratio": round(ref_med / fast_med, 2), "max_abs_diff": diff}
        results.append(row)
        print(f"{n:>7,} rows: pred_contrib {row['pred_contrib_rows_per_s']:>9,} rows/s "
              f"({row['pred_contrib_ms']} ms)  fast {row['fast_rows_per_s']:>9,} rows/s "
              f"({row['fast_ms']} ms)  ratio {row['ratio']:.2f}x  max|diff| {diff:.1e}  "
              f"[{len(ref_s)} calls each]", flush=True)
        if diff >= 1e-9:
            raise SystemExit(f"the fast explainer differs from pred_contrib by {diff} at {n} rows")
    payload = {"trees": booster.num_trees(), "features": booster.num_feature(),
               "leads": args.leads, "threads": args.threads, "build_ms": round(build_s * 1000),
               "v2_leaves": explainer.v2_leaves_, "v1_leaves": explainer.v1_leaves_,
               "table_mib": round(explainer.table_bytes / 2**20, 2),
               "max_path_features": explainer.max_n_, "results": results}
    OUT.mkdir(exist_ok=True)
    (OUT / "explain.json").write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
