"""The real exports through their dataset specs, against a default LightGBM on the same split.

    nice uv run python benchmarks/spec_examples.py [--only oulad|x-education]

For each shipped example whose data is present (``../shared/data/...`` beside the
checkout, or the spec's ``--dataset-file``/``LEADSCORE_SPEC_DATA``):

- the pipeline (``training.pipeline.train``: split, leakage audit, early stopping,
  calibration), trained through the spec, logged to a throwaway MLflow store;
- a default ``lightgbm.LGBMClassifier`` fitted on the pipeline's own training rows
  (train and validation windows, which it has no use for apart) and scored on the
  same test rows, with the same features;
- with activities (OULAD), both again on the fit columns alone (no click-log
  features), which is what the event history adds.

It prints ROC AUC and ECE for each and writes ``benchmarks/out/spec_examples.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _settings(root: Path):
    from leadscore.settings import Settings

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return Settings(home=root, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri)


def _baseline(frame, split, features, categorical) -> float:
    """Default LGBMClassifier on the split's train + validation rows, AUC on its test rows."""
    # One baseline for every benchmark that compares with it (run as a script, this
    # folder is on sys.path).
    from training_quality import default_lgbm_auc

    return default_lgbm_auc(frame, split, features, categorical)


def _run(name: str, data, store: Path, exclude: tuple[str, ...] = ()) -> dict:
    from training.pipeline import TrainOptions, train

    result = train(data, _settings(store), TrainOptions(experiment=name, exclude=exclude))
    used = result.model.feature_names
    baseline = _baseline(data.frame.reset_index(drop=True), result.split, used,
                         [c for c in result.model.categorical_features])
    m = result.metrics
    return {
        "rows": len(data.frame), "split": result.split.summary(), "features": len(used),
        "roc_auc": round(m["roc_auc"], 4), "ece": round(m["ece"], 4),
        "valid_roc_auc": round(m["valid_roc_auc"], 4), "best_iteration": m["best_iteration"],
        "default_lgbm_roc_auc": round(baseline, 4),
        "vs_default": round(m["roc_auc"] - baseline, 4),
        "leakage_excluded": list(result.leakage.excluded),
        "top_features": result.model.feature_importance().head(8).round(1).to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("oulad", "x-education"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from features.errors import SpecError
    from features.spec import example_spec_path
    from training.from_spec import training_data_for_spec

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("oulad", "x-education"):
            if args.only and name != args.only:
                continue
            try:
                data = training_data_for_spec(example_spec_path(name))
            except SpecError as exc:
                print(f"{name}: skipped, its data is not here ({str(exc).splitlines()[0]})")
                continue
            store = Path(tmp) / name
            results[name] = {"all": _run(name, data, store)}
            fit = _fit_names(data)
            engagement = [n for n in data.schema.names
                          if n not in fit and n not in data.schema.declared_leaky]
            if data.info.get("n_activities"):
                results[name]["fit_only"] = _run(name, data, store, exclude=tuple(engagement))
            for variant, r in results[name].items():
                print(f"{name:<12} {variant:<9} test ROC AUC {r['roc_auc']:.4f} (ECE {r['ece']:.4f}) "
                      f"vs default LGBMClassifier {r['default_lgbm_roc_auc']:.4f} on the same "
                      f"split: {r['vs_default']:+.4f}; {r['features']} features, "
                      f"train/valid/test {r['split']['n_train']}/{r['split']['n_valid']}/"
                      f"{r['split']['n_test']}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spec_examples.json").write_text(json.dumps(results, indent=2, default=str))


def _fit_names(data) -> set[str]:
    """The fit columns of a spec's feature set (every feature but the engagement ones)."""
    definition = data.artifacts.get("dataset/feature_set.json", {})
    return {c["name"] for c in definition.get("fit", [])} | {"lead_age_days"}


if __name__ == "__main__":
    main()
