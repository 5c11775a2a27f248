"""Benchmark: score 1,000,000 leads and their ~30 activities each with the default rules.

The target (issue 5) is under 60 s on 2 cores. Next to the scoring time, the run
measures a reference on the same frames, a plain ``groupby(["lead_id", "type"]).size()``
count (the least any engagement scorer must do), so the ratio can be compared across
machines and loads.

Data are made here with numpy in a few seconds (not the simulator: this measures the
engine, not the data's realism). Frames are built directly in the canonical dtypes that
``features.schema`` returns.

``--quality N`` instead measures how well the default rules rank leads on a generated
CRM of N leads (``features.synthetic``): ROC AUC on the test window (the last 20% of
the labelled weekly snapshots), with the rules' own map and with the map refitted by
``fit_mapping`` on the earlier snapshots, next to the generator's true probability
(the ceiling any scorer could reach).

Usage::

    nice uv run python benchmarks/rules.py [--leads 1000000] [--per-lead 30]
    nice uv run python benchmarks/rules.py --quality 20000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from features.schema import ACTIVITY_TYPES
from rules_fallback import evaluate, fit_mapping, load_rules, rules_metrics, score_leads

AS_OF = pd.Timestamp("2026-03-01T00:00:00Z")
TYPE_WEIGHTS = {
    "page_view": 0.35, "email_open": 0.25, "email_click": 0.08, "pricing_page_view": 0.06,
    "content_download": 0.05, "form_submit": 0.04, "webinar_registered": 0.03,
    "webinar_attended": 0.02, "chat": 0.03, "demo_request": 0.01, "trial_signup": 0.01,
    "unsubscribe": 0.005,
}


def make_data(n: int, per_lead: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leads with fit attributes and activities over the last 180 days, canonical dtypes."""
    rng = np.random.default_rng(seed)
    ids = pa.array([f"L{i:07d}" for i in range(n)], pa.string())
    created = AS_OF.value - rng.integers(1, 365 * 86400, n) * 10**9
    seniority = np.array(["VP", "Director", "Manager", "Individual contributor", "Student", "C-level"])
    domains = np.array(["gmail.com", "acme.io", "globex.com", "uni.edu", "outlook.com", "initech.co"])
    email = pa.array(
        np.char.add("u@", domains[rng.integers(0, len(domains), n)]).astype(object), pa.string()
    )
    leads = pd.DataFrame(
        {
            "lead_id": pd.array(ids, dtype="string"),
            "created_at": pd.to_datetime(created, utc=True),
            "seniority": pd.array(seniority[rng.integers(0, len(seniority), n)], dtype="string"),
            "company_size": np.round(rng.lognormal(4, 1.5, n)),
            "industry": pd.array(np.full(n, "software"), dtype="string"),
            "email": pd.array(email, dtype="string"),
        }
    )

    counts = rng.poisson(per_lead, n)
    owner = np.repeat(np.arange(n), counts)
    m = len(owner)
    names = list(TYPE_WEIGHTS)
    weights = np.array([TYPE_WEIGHTS[t] for t in names])
    type_idx = rng.choice(len(names), m, p=weights / weights.sum())
    age_s = rng.integers(-86400, 180 * 86400, m)  # a few after as_of: point in time is exercised
    assert set(names) <= set(ACTIVITY_TYPES)
    activities = pd.DataFrame(
        {
            "lead_id": pd.array(ids.take(pa.array(owner)), dtype="string"),
            "occurred_at": pd.to_datetime(AS_OF.value - age_s * 10**9, utc=True),
            "type": pd.array(pa.array(names, pa.string()).take(pa.array(type_idx)), dtype="string"),
        }
    )
    return leads, activities


def timed(label: str, fn, n: int):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<52} {seconds:8.2f} s  {n / seconds:12,.0f} leads/s", flush=True)
    return result, seconds


def quality(n_leads: int, seed: int = 0) -> None:
    """ROC AUC of the default rules on the test window of a generated CRM."""
    import tempfile
    from pathlib import Path

    from sklearn.metrics import roc_auc_score

    from features.build import data_end, eligible_pairs
    from features.grid import DEFAULT_HORIZON, snapshot_grid
    from features.schema import validate_activities, validate_leads
    from features.synthetic import GeneratorConfig, generate_to_dir

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_to_dir(GeneratorConfig(n_leads=n_leads, seed=seed, truth_paths=4), tmp)
        print(f"generated {n_leads:,} leads in {time.perf_counter() - start:.0f} s", flush=True)
        leads = validate_leads(pd.read_parquet(Path(tmp, "leads.parquet")))
        activities = validate_activities(
            pd.read_parquet(Path(tmp, "activities.parquet")), lead_ids=leads["lead_id"]
        ).frame
        truth = pd.read_parquet(Path(tmp, "truth.parquet"))

    end = data_end(leads, activities)
    grid = snapshot_grid(leads["created_at"].min(), end - DEFAULT_HORIZON)
    lead_pos, grid_pos = eligible_pairs(leads, grid)
    snapshots = leads.iloc[lead_pos].reset_index(drop=True)
    as_of = pd.Series(grid[grid_pos])
    converted = snapshots["converted_at"]
    label = (
        converted.notna() & (converted >= as_of) & (converted <= as_of + DEFAULT_HORIZON)
    ).to_numpy(int)
    cut = grid[int(len(grid) * 0.8)]
    test = (as_of >= cut).to_numpy()
    print(
        f"{len(snapshots):,} labelled snapshots on {len(grid)} weekly dates; test window from "
        f"{cut.date()}: {test.sum():,} snapshots, base rate {label[test].mean():.3f}"
    )

    rules = load_rules()
    train_eval = evaluate(rules, snapshots[~test], activities, as_of[~test])
    fitted = fit_mapping(rules, train_eval.total, label[~test])
    for name, ruleset in (("default map", rules), ("map refitted on earlier snapshots", fitted)):
        m = rules_metrics(
            ruleset, snapshots[test].reset_index(drop=True), activities,
            as_of[test].reset_index(drop=True), label[test],
        )
        print(
            f"rules, {name:<34} ROC AUC {m['roc_auc']:.3f}  AP {m['average_precision']:.3f}  "
            f"log loss {m['log_loss']:.4f}  Brier {m['brier']:.4f}"
        )
    print(
        f"refitted map: intercept {fitted.mapping.intercept:.3f}, slope {fitted.mapping.slope:.4f} "
        f"(default {rules.mapping.intercept}, {rules.mapping.slope})"
    )
    keyed = pd.DataFrame({"lead_id": snapshots["lead_id"].astype(str), "as_of": as_of, "label": label})
    truth = truth.assign(lead_id=truth["lead_id"].astype(str))
    joined = keyed[test].merge(truth, on=["lead_id", "as_of"], how="inner")
    if len(joined) and joined["label"].nunique() == 2:
        print(
            f"ceiling: the generator's true probability, ROC AUC "
            f"{roc_auc_score(joined['label'], joined['p_convert']):.3f} on {len(joined):,} snapshots"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--per-lead", type=float, default=30.0)
    parser.add_argument("--quality", type=int, metavar="N", help="measure ROC AUC on N generated leads")
    args = parser.parse_args()
    if args.quality:
        quality(args.quality)
        return

    start = time.perf_counter()
    leads, activities = make_data(args.leads, args.per_lead)
    print(
        f"data: {len(leads):,} leads, {len(activities):,} activities "
        f"({time.perf_counter() - start:.1f} s to make)",
        flush=True,
    )
    rules = load_rules()
    n = len(leads)

    _, reference = timed(
        "reference: activities.groupby([lead_id, type]).size()",
        lambda: activities.groupby(["lead_id", "type"], observed=True).size(),
        n,
    )
    evaluation, t_eval = timed(
        "evaluate (scores, no reasons)", lambda: evaluate(rules, leads, activities, AS_OF), n
    )
    _, t_table = timed("reason_table(top=3) (columnar reasons)", lambda: evaluation.reason_table(3), n)
    out, t_full = timed(
        "score_leads(..., reasons=True) (Reason objects)",
        lambda: score_leads(rules, leads, activities, AS_OF, top_reasons=3),
        n,
    )
    print(
        f"\nscores + columnar reasons: {t_eval + t_table:.2f} s "
        f"({(t_eval + t_table) / reference:.1f}x the reference); "
        f"with Reason objects: {t_full:.2f} s ({t_full / reference:.1f}x); target < 60 s"
    )
    print("grades:", out["grade"].value_counts().sort_index().to_dict())
    print("mean reasons per lead:", round(out["reasons"].map(len).mean(), 2))


if __name__ == "__main__":
    main()
