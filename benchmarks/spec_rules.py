"""How well ``leadscore rules init`` ranks the real exports: ROC AUC of the generated rules.

    uv run python benchmarks/spec_rules.py [--only oulad|x-education] [--prior-strength 20]

For each shipped example whose data is present beside the checkout:

- **in sample**: the rules learned from every labelled example, scored on the same
  examples (what ``rules init`` prints);
- **held out**: learned on part of the examples and scored on the rest. X Education
  (no time): five random 70/30 splits of the leads (seeds 0-4), mean and range. OULAD:
  learned on the snapshots before 2014-10-01 (BBB 2013B and AAA 2013J), scored on
  those of AAA 2014J, the spec's own test presentation.

Scores are the rules' total points (the fitted logistic map is monotone, so the AUC is
that of the probabilities too). Prints one line per measure and writes
``benchmarks/out/spec_rules.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _auc(vocabulary, tables, train, test, prior_strength: float) -> tuple[float, float]:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from rules_fallback.init import generate_rules
    from rules_fallback.spec_rules import evaluate_spec

    generated = generate_rules(vocabulary, tables.leads, tables.activities, train,
                               prior_strength=prior_strength)
    leads = tables.leads.set_index("lead_id").loc[test["lead_id"]].reset_index()
    as_of = (test["as_of"].reset_index(drop=True) if "as_of" in test.columns
             else pd.Timestamp("2000-01-01", tz="UTC"))
    total = evaluate_spec(generated.rules, leads, tables.activities, as_of).total
    return generated.summary["roc_auc"], float(roc_auc_score(test["label"], total))


def measure(name: str, prior_strength: float) -> dict:
    import numpy as np
    import pandas as pd

    from features.spec import example_spec_path, load_spec, load_tables
    from rules_fallback.spec_rules import SpecVocabulary

    spec = load_spec(example_spec_path(name))
    tables = load_tables(spec)
    vocabulary = SpecVocabulary.from_spec(spec)
    if tables.has_time:
        from training.from_spec import build_spec_training_set

        frame, _ = build_spec_training_set(tables)
        examples = frame[["lead_id", "as_of", "label"]]
        later = examples["as_of"] >= pd.Timestamp("2014-10-01", tz="UTC")
        in_sample, _ = _auc(vocabulary, tables, examples, examples, prior_strength)
        _, held = _auc(vocabulary, tables, examples[~later], examples[later], prior_strength)
        return {"in_sample": in_sample, "held_out": held, "n": len(examples),
                "n_test": int(later.sum()), "held_out_is": "AAA 2014J snapshots"}
    examples = tables.leads[["lead_id", "label"]]
    in_sample, _ = _auc(vocabulary, tables, examples, examples, prior_strength)
    held = []
    for seed in range(5):
        test = examples.groupby("label", group_keys=False).sample(frac=0.3, random_state=seed)
        held.append(_auc(vocabulary, tables, examples.drop(test.index), test, prior_strength)[1])
    return {"in_sample": in_sample, "held_out": float(np.mean(held)),
            "held_out_min": min(held), "held_out_max": max(held), "n": len(examples),
            "held_out_is": "5 stratified 70/30 splits"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["oulad", "x-education"])
    parser.add_argument("--prior-strength", type=float, default=20.0)
    args = parser.parse_args()
    results = {}
    for name in ("x-education", "oulad"):
        if args.only and name != args.only:
            continue
        try:
            results[name] = measure(name, args.prior_strength)
        except FileNotFoundError as exc:  # the export is not beside the checkout
            print(f"{name}: skipped ({exc})")
            continue
        r = results[name]
        spread = (f" (range {r['held_out_min']:.3f}-{r['held_out_max']:.3f})"
                  if "held_out_min" in r else "")
        print(f"{name}: in-sample ROC AUC {r['in_sample']:.3f} on {r['n']} examples; held out "
              f"{r['held_out']:.3f}{spread} ({r['held_out_is']})")
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "spec_rules.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
