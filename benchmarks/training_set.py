"""Benchmark: the vectorised training-set builder against a straightforward pandas one.

    nice uv run python benchmarks/training_set.py [--leads 100000] [--activities 3000000]
        [--weeks 52] [--naive-snapshots 4] [--source synthetic|quick]

What it measures (issue part 6):

- the fast builder (:func:`features.build.build_training_set`) on 100,000 leads and about
  3 million activities with weekly snapshots over a year: wall time, rows per second and
  the peak resident memory of the process (``ru_maxrss``, which includes the data);
- the naive reference (:func:`naive_training_set` below): for each ``as_of``, filter the
  activities before it, group by lead, compute every feature with plain pandas. It runs
  in the same process on a subset of the snapshots (``--naive-snapshots``, spread over the
  year) and its time is extrapolated *per row* to the full build, because running it
  on all 52 snapshots takes many minutes; the printout says so;
- before timing, both are checked equal on a small sample (exactly, except the decayed
  engagement sums, which the two compute in a different floating-point order: 1e-9
  relative).

Times are reported as wall time and as CPU time of this process. The ratio is taken on
CPU time: the machine this was written on is shared (2 cores, several busy neighbours),
so wall time mostly measures the neighbours; CPU time measures our work. Both are printed.

The naive reference is also what ``tests/features/test_build.py`` compares against.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.build import build_training_set, data_end  # noqa: E402
from features.functions import (  # noqa: E402
    ACTIVE_DAY_WINDOWS,
    COUNT_WINDOWS,
    FREE_MAIL_DOMAINS,
    HALF_LIVES,
    PROFILE_FIELDS,
    company_size_band_of,
    region_of,
)
from features.grid import DEFAULT_EVERY, DEFAULT_HORIZON, snapshot_grid  # noqa: E402
from features.history import TYPE_WEIGHTS, UNKNOWN_TYPE_WEIGHT, activity_channel  # noqa: E402
from features.registry import categorical_features, feature_names  # noqa: E402
from features.schema import ACTIVITY_TYPES, KEY_ACTIONS  # noqa: E402

DAY = pd.Timedelta(days=1)
# Decayed sums are computed per activity here and by prefix sums in the fast path.
DECAYED = [f"engagement_decayed_hl{h:g}d" for h in HALF_LIVES]


# --- the naive reference -----------------------------------------------------------------------


def _naive_fit(leads: pd.DataFrame) -> pd.DataFrame:
    """Fit features per lead, straight from the columns."""

    def text(column: str) -> pd.Series:
        if column not in leads.columns:
            return pd.Series(pd.NA, index=leads.index, dtype="string")
        s = leads[column].astype("string").str.strip()
        return s.mask(s == "")

    out = pd.DataFrame(index=leads.index)
    out["industry"] = text("industry")
    out["company_size_band"] = company_size_band_of(leads["company_size"])
    out["seniority"] = text("seniority")
    out["job_function"] = text("job_function")
    out["country"] = text("country")
    out["region"] = region_of(leads["country"])
    out["source_channel"] = text("source")
    out["campaign"] = text("utm_campaign")

    def is_free(email: object) -> float:
        if email is None or email is pd.NA or "@" not in str(email):
            return np.nan
        domain = str(email).strip().lower().rsplit("@", 1)[-1]
        prefixes = ("yahoo.", "hotmail.", "outlook.", "live.", "gmx.", "yandex.", "aol.")
        return float(domain in FREE_MAIL_DOMAINS or domain.startswith(prefixes))

    emails = leads["email"] if "email" in leads.columns else pd.Series(None, index=leads.index)
    out["free_mail"] = [is_free(e) for e in emails.astype(object)]

    def present(column: str) -> pd.Series:
        if column not in leads.columns:
            return pd.Series(False, index=leads.index)
        v = leads[column]
        if pd.api.types.is_numeric_dtype(v.dtype):
            return v.notna()
        return v.astype("string").str.strip().fillna("") != ""

    out["profile_completeness"] = sum(present(c).astype(float) for c in PROFILE_FIELDS) / len(
        PROFILE_FIELDS
    )
    out.index = leads["lead_id"].astype(str)
    return out


def naive_features_at(
    leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Every feature of ``leads`` at one ``as_of``, by filtering and grouping (index lead_id)."""
    ids = leads["lead_id"].astype(str)
    fit = _naive_fit(leads)
    out = pd.DataFrame(index=pd.Index(ids, name="lead_id"))
    for column in fit.columns:
        out[column] = fit[column]
    out["lead_age_days"] = ((as_of - leads["created_at"]) / DAY).to_numpy()

    past = activities[activities["occurred_at"] < as_of].copy()
    past["lead_id"] = past["lead_id"].astype(str)
    past = past[past["lead_id"].isin(out.index)]
    past["type_code"] = pd.Index(list(ACTIVITY_TYPES)).get_indexer(past["type"].astype(object))
    past["channel"] = activity_channel(past).to_numpy(dtype=object)
    past = past.sort_values(["lead_id", "occurred_at", "type_code"], kind="stable")
    age = as_of - past["occurred_at"]

    def per_lead(series: pd.Series, fill: float) -> np.ndarray:
        return series.reindex(out.index).fillna(fill).to_numpy(dtype=float)

    for days in COUNT_WINDOWS:
        window = past[age <= pd.Timedelta(days=days)]
        out[f"activity_count_{days}d"] = per_lead(window.groupby("lead_id").size(), 0)
        by_type = window.groupby(["lead_id", "type"]).size()
        for t in ACTIVITY_TYPES:
            counts = by_type.xs(t, level="type") if t in by_type.index.get_level_values(1) else (
                pd.Series(dtype=float)
            )
            out[f"{t}_count_{days}d"] = per_lead(counts, 0)
    last = past.groupby("lead_id")["occurred_at"].max()
    out["days_since_last_activity"] = per_lead((as_of - last) / DAY, np.nan)
    for action in KEY_ACTIONS:
        last = past[past["type"] == action].groupby("lead_id")["occurred_at"].max()
        out[f"days_since_last_{action}"] = per_lead((as_of - last) / DAY, np.nan)
    weights = past["type"].map(TYPE_WEIGHTS).fillna(UNKNOWN_TYPE_WEIGHT).astype(float)
    for h in HALF_LIVES:
        decayed = weights * np.exp2(-(age / DAY) / h)
        out[f"engagement_decayed_hl{h:g}d"] = per_lead(decayed.groupby(past["lead_id"]).sum(), 0)
    recent = past[age <= pd.Timedelta(days=7)].groupby("lead_id").size()
    prior = past[(age > pd.Timedelta(days=7)) & (age <= pd.Timedelta(days=37))]
    prior = prior.groupby("lead_id").size()
    out["activity_velocity"] = (per_lead(recent, 0) + 1.0) / (
        per_lead(prior, 0) * 7 / 30 + 1.0
    )
    for days in ACTIVE_DAY_WINDOWS:
        window = past[age <= pd.Timedelta(days=days)]
        active = window["occurred_at"].dt.floor("D").groupby(window["lead_id"]).nunique()
        out[f"active_days_{days}d"] = per_lead(active, 0)
    grouped = past.groupby("lead_id")["channel"]
    out["first_touch_channel"] = grouped.first().reindex(out.index).astype("string")
    out["last_touch_channel"] = grouped.last().reindex(out.index).astype("string")
    # The window above is age <= days, i.e. occurred_at >= as_of - days: the same
    # [as_of - days, as_of) window as the fast path.
    return out[feature_names()]


def naive_training_set(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    *,
    every: pd.Timedelta = DEFAULT_EVERY,
    horizon: pd.Timedelta = DEFAULT_HORIZON,
    snapshots: pd.DatetimeIndex | None = None,
) -> pd.DataFrame:
    """The training set one snapshot at a time (censored snapshots dropped, as by default)."""
    end = data_end(leads, activities)
    if snapshots is None:
        snapshots = snapshot_grid(leads["created_at"].min(), end, every)
        snapshots = snapshots[snapshots + horizon <= end]
    frames = []
    for as_of in snapshots:
        conv, dq = leads["converted_at"], leads["disqualified_at"]
        eligible = (
            (leads["created_at"] < as_of)
            & (conv.isna() | (conv >= as_of))
            & (dq.isna() | (dq >= as_of))
        )
        chosen = leads[eligible.to_numpy()]
        feats = naive_features_at(chosen, activities, as_of)
        label = (chosen["converted_at"] <= as_of + horizon).fillna(False).astype("int64")
        frame = pd.DataFrame(
            {
                "lead_id": pd.array(chosen["lead_id"].to_numpy(dtype=object), dtype="string"),
                "as_of": pd.DatetimeIndex([as_of] * len(chosen)).as_unit("ns"),
                "label": label.to_numpy(),
            }
        )
        frames.append(pd.concat([frame, feats.reset_index(drop=True)], axis=1))
    out = pd.concat(frames, ignore_index=True)
    for name in categorical_features():
        out[name] = out[name].astype("string")
    return out


def assert_same_rows(fast: pd.DataFrame, naive: pd.DataFrame) -> None:
    """The two builds agree: same rows, same labels, same features (decay to 1e-9)."""
    key = ["as_of", "lead_id"]
    fast = fast.sort_values(key).reset_index(drop=True)
    naive = naive.sort_values(key).reset_index(drop=True)
    exact = [c for c in fast.columns if c not in DECAYED]
    pd.testing.assert_frame_equal(fast[exact], naive[exact], check_dtype=True)
    pd.testing.assert_frame_equal(fast[DECAYED], naive[DECAYED], rtol=1e-9, atol=1e-12)


# --- data ----------------------------------------------------------------------------------------


def quick_data(n_leads: int, n_activities: int, *, seed: int = 0, days: int = 365):
    """Leads and activities shaped like a CRM export, fast to make at any size.

    Used when the synthetic generator is not available; its realism does not matter for
    timing, only its size and shape (activity bursts after creation, outcomes, sparse fit).
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2025-01-06T00:00:00Z")
    span = pd.Timedelta(days=days).value
    created = t0.value + rng.integers(0, span, n_leads)
    outcome_at = created + rng.exponential(60 * DAY.value, n_leads).astype(np.int64)
    kind = rng.random(n_leads)
    end = t0.value + span + 90 * DAY.value
    converted = np.where((kind < 0.12) & (outcome_at < end), outcome_at, np.iinfo(np.int64).min)
    disq = np.where((kind > 0.8) & (outcome_at < end), outcome_at, np.iinfo(np.int64).min)
    pick = lambda values, p_missing: np.where(  # noqa: E731
        rng.random(n_leads) < p_missing, None, rng.choice(values, n_leads)
    )
    ts = lambda ns: pd.to_datetime(ns, utc=True).as_unit("ns")  # noqa: E731
    leads = pd.DataFrame(
        {
            "lead_id": pd.array([f"L{i:06d}" for i in range(n_leads)], dtype="string"),
            "created_at": ts(created),
            "converted_at": ts(np.where(converted > 0, converted, np.iinfo(np.int64).min)),
            "disqualified_at": ts(np.where(disq > 0, disq, np.iinfo(np.int64).min)),
            "source": pd.array(pick(["paid_search", "organic", "referral", "event", "social"], 0.05), dtype="string"),
            "utm_campaign": pd.array(pick([f"camp-{i}" for i in range(30)], 0.4), dtype="string"),
            "country": pd.array(pick(["US", "DE", "GB", "IN", "FR", "BR", "AU", "JP"], 0.1), dtype="string"),
            "industry": pd.array(pick(["software", "retail", "finance", "health", "education"], 0.2), dtype="string"),
            "company_size": np.where(rng.random(n_leads) < 0.2, np.nan, np.floor(rng.lognormal(4, 1.8, n_leads))),
            "job_title": pd.array(pick(["CTO", "Analyst", "VP Sales", "Engineer"], 0.3), dtype="string"),
            "seniority": pd.array(pick(["c_level", "vp", "director", "manager", "individual"], 0.25), dtype="string"),
            "job_function": pd.array(pick(["it", "marketing", "sales", "finance", "operations"], 0.25), dtype="string"),
            "email": pd.array(
                [f"u{i}@{d}" for i, d in enumerate(rng.choice(["gmail.com", "acme.io", "yahoo.co.uk", "corp.com"], n_leads))],
                dtype="string",
            ),
        }
    )
    owner = rng.integers(0, n_leads, n_activities)
    offset = (rng.exponential(40, n_activities) * DAY.value).astype(np.int64) - 3 * DAY.value
    occurred = np.minimum(created[owner] + offset, end)
    type_p = np.array([30, 6, 25, 8, 4, 4, 2, 1.5, 1, 0.5, 2, 0.5, 1.0])
    types = np.array([*ACTIVITY_TYPES, "custom_event"], dtype=object)
    url_pool = np.array(
        [None, None, None, "https://x.io/p?utm_medium=cpc", "https://x.io/a?utm_source=newsletter"],
        dtype=object,
    )
    activities = pd.DataFrame(
        {
            "lead_id": pd.array(leads["lead_id"].to_numpy()[owner], dtype="string"),
            "occurred_at": ts(occurred),
            "type": pd.array(rng.choice(types, n_activities, p=type_p / type_p.sum()), dtype="string"),
            "url": pd.array(url_pool[rng.integers(0, len(url_pool), n_activities)], dtype="string"),
            "campaign": pd.array(
                np.where(rng.random(n_activities) < 0.3, "spring-promo", None), dtype="string"
            ),
        }
    )
    return leads, activities


def load_data(source: str, n_leads: int, n_activities: int, seed: int):
    """Data from the synthetic generator when asked and available, else :func:`quick_data`."""
    if source == "synthetic":
        from features.synthetic import GeneratorConfig, generate

        # No ground truth: the benchmark needs only the tables. The generator decides how
        # many activities a lead has, so --activities does not apply.
        crm = generate(GeneratorConfig(n_leads=n_leads, seed=seed, truth_sample=0))
        return crm.leads.to_pandas(), crm.activities.to_pandas()
    return quick_data(n_leads, n_activities, seed=seed)


# --- the run -------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--activities", type=int, default=3_000_000)
    parser.add_argument("--weeks", type=int, default=52, help="days of data = 7 * weeks")
    parser.add_argument("--naive-snapshots", type=int, default=4)
    parser.add_argument("--source", choices=("synthetic", "quick"), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t = time.perf_counter()
    leads, activities = load_data(args.source, args.leads, args.activities, args.seed)
    from features.schema import validate_activities, validate_leads

    leads = validate_leads(leads)
    activities = validate_activities(activities, lead_ids=leads["lead_id"]).frame
    print(
        f"data: {len(leads):,} leads, {len(activities):,} activities "
        f"({time.perf_counter() - t:.1f} s to make and validate); rss {peak_rss_mb():,.0f} MiB"
    )

    # 1. Equality on a small sample: 2,000 leads, every snapshot.
    sample_ids = leads["lead_id"].sample(2_000, random_state=1)
    small_leads = leads[leads["lead_id"].isin(sample_ids)].reset_index(drop=True)
    small_acts = activities[activities["lead_id"].isin(sample_ids)].reset_index(drop=True)
    fast_small = build_training_set(small_leads, small_acts)
    naive_small = naive_training_set(small_leads, small_acts)
    assert_same_rows(fast_small, naive_small)
    print(f"check: fast == naive on {len(fast_small):,} rows of 2,000 sampled leads")

    # 2. The fast builder on everything.
    rss_before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    fast = build_training_set(leads, activities)
    fast_wall, fast_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"fast:  {len(fast):,} rows x {len(feature_names())} features, "
        f"{fast['as_of'].nunique()} snapshots: wall {fast_wall:.1f} s = "
        f"{len(fast) / fast_wall:,.0f} rows/s, cpu {fast_cpu:.1f} s = "
        f"{len(fast) / fast_cpu:,.0f} rows/s; peak rss {peak_rss_mb():,.0f} MiB "
        f"(before the build {rss_before:,.0f} MiB)"
    )

    # 3. The naive reference on a spread of snapshots, extrapolated per row.
    grid = pd.DatetimeIndex(fast["as_of"].unique()).sort_values()
    picks = grid[np.linspace(0, len(grid) - 1, min(args.naive_snapshots, len(grid))).round().astype(int)]
    wall, cpu = time.perf_counter(), time.process_time()
    naive = naive_training_set(leads, activities, snapshots=picks)
    naive_wall, naive_cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert_same_rows(fast[fast["as_of"].isin(picks)], naive)
    print(
        f"naive: {len(naive):,} rows on {len(picks)} of {len(grid)} snapshots (equal to the "
        f"fast rows): wall {naive_wall:.1f} s = {len(naive) / naive_wall:,.0f} rows/s, "
        f"cpu {naive_cpu:.1f} s = {len(naive) / naive_cpu:,.0f} rows/s; extrapolated per row "
        f"to the full build: cpu {len(fast) * naive_cpu / len(naive):,.0f} s"
    )
    cpu_ratio = (len(fast) / fast_cpu) / (len(naive) / naive_cpu)
    wall_ratio = (len(fast) / fast_wall) / (len(naive) / naive_wall)
    print(
        f"ratio: fast is {cpu_ratio:,.1f}x the naive per-snapshot pandas build in cpu time "
        f"({wall_ratio:,.1f}x in wall time on this shared machine); target >= 20x"
    )


if __name__ == "__main__":
    main()
