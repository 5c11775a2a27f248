"""Benchmark: score 1,000,000 leads and their ~30 activities each with the default rules.

The target (issue 5) is under 60 s on 2 cores. Next to the scoring time, the run
measures a reference on the same frames, a plain ``groupby(["lead_id", "type"]).size()``
count (the least any engagement scorer must do), so the ratio can be compared across
machines and loads.

Data are made here with numpy in a few seconds (not the simulator: this measures the
engine, not the data's realism). Frames are built directly in the canonical dtypes that
``features.schema`` returns.

Usage::

    nice uv run python benchmarks/rules.py [--leads 1000000] [--per-lead 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from features.schema import ACTIVITY_TYPES
from rules_fallback import evaluate, load_rules, score_leads

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--per-lead", type=float, default=30.0)
    args = parser.parse_args()

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
