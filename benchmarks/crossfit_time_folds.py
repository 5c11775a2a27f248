"""Small time-split data: one validation window against lead-grouped cross-fitting.

    OMP_NUM_THREADS=1 nice uv run python benchmarks/crossfit_time_folds.py [NAME ...]

Trains each set twice through the real pipeline, with ``--crossfit never`` (early
stopping and calibration on the validation window, the behaviour before) and ``auto``
(lead-grouped folds over train + validation, then one refit: :mod:`training.crossfit`),
and prints test ROC AUC, ECE, Brier, the round count and the seconds of each, with a
default ``LGBMClassifier`` on the same split for scale. The sets, all below the
cross-fit threshold and split by time:

- ``oulad``: the OULAD example spec (needs ``../shared/data/oulad``; skipped without);
- ``syn1500-1``, ``syn1500-2``, ``syn2000-3``: synthetic CRMs (leads-seed);
- ``acme-0``, ``acme-1``: the spec CRM of ``tests/training/test_from_spec.py`` (a lead
  table, an activity log with its own type names, outcomes), seeds 0 and 1.

Writes ``benchmarks/out/crossfit_time_folds.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _sets(tmp: Path) -> dict:
    from features.spec import example_spec_path
    from features.synthetic import GeneratorConfig, generate_to_dir
    from training.from_spec import training_data_for_spec
    from training.pipeline import training_data_from_dir

    def synthetic(leads: int, seed: int):
        def build():
            folder = tmp / f"syn{leads}-{seed}"
            generate_to_dir(GeneratorConfig(n_leads=leads, seed=seed), folder)
            return training_data_from_dir(folder)
        return build

    def acme(seed: int):
        def build():
            sys.path.insert(0, str(REPO))
            from tests.training.test_from_spec import write_crm

            folder = tmp / f"acme-{seed}"
            folder.mkdir()
            return training_data_for_spec(write_crm(folder, seed=seed))
        return build

    sets = {"oulad": lambda: training_data_for_spec(example_spec_path("oulad"))}
    for leads, seed in ((1500, 1), (1500, 2), (2000, 3)):
        sets[f"syn{leads}-{seed}"] = synthetic(leads, seed)
    for seed in (0, 1):
        sets[f"acme-{seed}"] = acme(seed)
    return sets


def main() -> None:
    warnings.filterwarnings("ignore")
    from leadscore.settings import disable_telemetry

    disable_telemetry()
    from benchmarks.training_quality import _settings, default_lgbm_auc
    from training.pipeline import TrainOptions, train

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        sets = _sets(Path(tmp))
        for name in sys.argv[1:] or list(sets):
            try:
                data = sets[name]()
            except ValueError as exc:  # SpecError: the OULAD export is not beside the checkout
                print(f"{name}: skipped ({str(exc).splitlines()[0]})")
                continue
            row: dict = {"rows": len(data.frame)}
            for mode in ("never", "auto"):
                started = time.perf_counter()
                result = train(data, _settings(Path(tmp) / f"{name}-{mode}"), TrainOptions(
                    experiment="crossfit-time", register=False, crossfit=mode))
                m = result.metrics
                row[mode] = {
                    "roc_auc": round(m["roc_auc"], 4), "ece": round(m["ece"], 4),
                    "brier": round(m["brier"], 4), "rounds": int(m["best_iteration"]),
                    "folds": (getattr(result.model, "crossfit_", None) or {}).get(
                        "cv_kind", "one window"),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            row["default_lgbm_roc_auc"] = round(default_lgbm_auc(
                data.frame.reset_index(drop=True), result.split, result.model.feature_names,
                result.model.categorical_features), 4)
            row["auc_change"] = round(row["auto"]["roc_auc"] - row["never"]["roc_auc"], 4)
            row["brier_change"] = round(row["auto"]["brier"] - row["never"]["brier"], 4)
            results[name] = row
            print(f"{name} ({row['rows']} rows): one window {row['never']}; cross-fitted "
                  f"{row['auto']}; AUC {row['auc_change']:+.4f}, Brier "
                  f"{row['brier_change']:+.4f}; default LGBMClassifier "
                  f"{row['default_lgbm_roc_auc']}", flush=True)
    out = REPO / "benchmarks" / "out" / "crossfit_time_folds.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
