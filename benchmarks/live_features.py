"""Benchmark: the live feature path against the vectorised one, by call size.

    OMP_NUM_THREADS=1 nice uv run python benchmarks/live_features.py --data DIR
        [--sizes 1,2,4,8,32,128,1000] [--repeat 30]

``DIR`` is generated data (``leadscore generate --out DIR``). For each call size n, n
leads with their activities are scored through ``serving.scorer.score_payloads`` with
a small LightGBM model fitted here (the model's work is the same on both paths), once
with the live path (:mod:`features.live`) and once with the vectorised path
(:func:`features.online.feature_columns_at` and the frame validation), alternating, in
the same process. It prints the median milliseconds per call of each and their ratio,
which is what ``serving.scorer.LIVE_MAX_LEADS`` is chosen from: the live path should
win below it. Both paths are checked to give the same records at every size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import serving.scorer as scorer  # noqa: E402
from features.online import features_at  # noqa: E402
from features.registry import FEATURE_SET_VERSION, categorical_features, feature_names  # noqa: E402
from features.schema import validate_activities, validate_leads  # noqa: E402
from rules_fallback import load_rules  # noqa: E402
from serving.contract import ScoreRequest  # noqa: E402
from training.model import LeadModel  # noqa: E402


def _payloads(leads: pd.DataFrame, acts: pd.DataFrame, as_of: pd.Timestamp, n: int,
              rng: np.random.Generator) -> list:
    picked = leads.iloc[rng.choice(len(leads), n, replace=False)]
    mine = acts[acts["lead_id"].isin(picked["lead_id"]) & (acts["occurred_at"] < as_of)]
    by_lead = {k: g for k, g in mine.groupby("lead_id")}
    out = []
    for row in picked.itertuples(index=False):
        lead = {k: (None if pd.isna(v) else v) for k, v in row._asdict().items()
                if k in ("lead_id", "source", "utm_campaign", "country", "industry",
                         "company_size", "job_title", "seniority", "job_function", "email")}
        lead["created_at"] = row.created_at.isoformat()
        g = by_lead.get(row.lead_id)
        lead["activities"] = [] if g is None else [
            {"type": t, "occurred_at": o.isoformat(), "url": None if pd.isna(u) else u}
            for t, o, u in zip(g["type"], g["occurred_at"], g["url"], strict=True)]
        out.append(lead)
    return ScoreRequest.model_validate({"leads": out, "as_of": as_of.isoformat()}).leads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sizes", default="1,2,4,8,32,128,1000")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    leads = validate_leads(pd.read_parquet(args.data / "leads.parquet"))
    acts = validate_activities(pd.read_parquet(args.data / "activities.parquet"),
                               lead_ids=leads["lead_id"]).frame
    as_of = acts["occurred_at"].max().floor("D") - pd.Timedelta(days=30)
    leads = leads[leads["created_at"] < as_of].reset_index(drop=True)
    X = features_at(leads.head(3000), acts, as_of)
    y = (X["pricing_page_view_count_90d"].fillna(0) + X["demo_request_count_90d"].fillna(0) > 0)
    model = LeadModel(feature_names(), categorical_features(), FEATURE_SET_VERSION,
                      params={"num_leaves": 31}, num_boost_round=200, early_stopping_rounds=0)
    half = len(X) // 2
    model.fit(X.iloc[:half], y.iloc[:half].to_numpy(int), X.iloc[half:],
              y.iloc[half:].to_numpy(int))
    bundle = scorer.ModelBundle(model, "bench", "1", None, "bench", pd.Timestamp.now(tz="UTC"))
    engine = scorer.Engine(bundle, load_rules(), "model")
    rng = np.random.default_rng(0)
    live_limit = scorer.LIVE_MAX_LEADS

    print(f"{'leads':>6} {'live ms':>9} {'vectorised ms':>14} {'vectorised/live':>16}")
    for n in [int(s) for s in args.sizes.split(",")]:
        payload = _payloads(leads, acts, as_of, n, rng)
        requests = [(payload, as_of)]
        times: dict[int, list[float]] = {10**9: [], 0: []}
        results = {}
        for _ in range(args.repeat):
            for limit in times:  # alternate, so both see the same machine
                scorer.LIVE_MAX_LEADS = limit
                t0 = time.perf_counter()
                results[limit] = scorer.score_payloads(requests, engine, top_reasons=3)
                times[limit].append(time.perf_counter() - t0)
        if results[10**9] != results[0]:
            sys.exit(f"the two paths disagree on a call of {n} leads")
        live, vectorised = (statistics.median(times[k]) * 1e3 for k in (10**9, 0))
        print(f"{n:6d} {live:9.2f} {vectorised:14.2f} {vectorised / live:15.1f}x")
    scorer.LIVE_MAX_LEADS = live_limit
    print(f"LIVE_MAX_LEADS = {live_limit}")


if __name__ == "__main__":
    main()
