"""The synthetic CRM: deterministic, within the data contract, realistic, and its truth calibrated."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.grid import snapshot_grid
from features.schema import ACTIVITY_TYPES, validate_activities, validate_leads
from features.synthetic import (
    COMPETITOR_DOMAINS,
    DEFAULT_END,
    DEFAULT_START,
    FREE_MAIL_DOMAINS,
    GeneratorConfig,
    SyntheticCRM,
    generate,
    generate_to_dir,
)
from leadscore.cli import app

HORIZON = pd.Timedelta(days=90)
FILES = ("leads.parquet", "activities.parquet", "truth.parquet")


def digests(directory: Path) -> dict[str, str]:
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in FILES}


@pytest.fixture(scope="module")
def crm() -> SyntheticCRM:
    """4,000 leads with the default 8 Monte Carlo paths (in memory, with the truth halves)."""
    return generate(GeneratorConfig(n_leads=4_000, seed=11))


@pytest.fixture(scope="module")
def frames(crm: SyntheticCRM) -> dict[str, pd.DataFrame]:
    return {
        "leads": crm.leads.to_pandas(),
        "activities": crm.activities.to_pandas(),
        "truth": crm.truth.to_pandas(),
    }


def realised(truth: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Truth rows whose horizon ends within the data, with the outcome that happened."""
    out = truth.merge(leads[["lead_id", "converted_at"]], on="lead_id", how="left")
    out["y"] = (out["converted_at"] > out["as_of"]) & (out["converted_at"] <= out["as_of"] + HORIZON)
    return out[out["as_of"] + HORIZON <= DEFAULT_END].reset_index(drop=True)


# --- determinism ---------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path):
    config = GeneratorConfig(n_leads=800, seed=5, truth_paths=2)
    generate_to_dir(config, tmp_path / "a")
    generate_to_dir(config, tmp_path / "b")
    assert digests(tmp_path / "a") == digests(tmp_path / "b")

    generate_to_dir(GeneratorConfig(n_leads=800, seed=6, truth_paths=2), tmp_path / "c")
    other = digests(tmp_path / "c")
    assert all(other[name] != digests(tmp_path / "a")[name] for name in FILES)


def test_data_do_not_depend_on_truth_settings(tmp_path: Path):
    """Truth has its own random stream: sampling it or skipping it leaves the data unchanged."""
    generate_to_dir(GeneratorConfig(n_leads=600, seed=5, truth_paths=2), tmp_path / "full")
    generate_to_dir(GeneratorConfig(n_leads=600, seed=5, truth_sample=0), tmp_path / "none")
    generate_to_dir(GeneratorConfig(n_leads=600, seed=5, truth_sample=50, truth_paths=2), tmp_path / "some")
    full, none, some = (digests(tmp_path / d) for d in ("full", "none", "some"))
    for name in ("leads.parquet", "activities.parquet"):
        assert full[name] == none[name] == some[name]
    assert pd.read_parquet(tmp_path / "none" / "truth.parquet").empty
    assert pd.read_parquet(tmp_path / "some" / "truth.parquet")["lead_id"].nunique() <= 50


# --- data contract -------------------------------------------------------------------


def test_files_pass_the_data_contract(synthetic_dir: Path):
    leads = validate_leads(pd.read_parquet(synthetic_dir / "leads.parquet"))
    checked = validate_activities(
        pd.read_parquet(synthetic_dir / "activities.parquet"),
        lead_ids=leads["lead_id"],
        now=DEFAULT_END,
    )
    assert checked.unknown_types == {}
    assert leads["lead_id"].str.fullmatch(r"L-\d{7}").all()
    assert leads["lead_id"].is_unique
    assert (leads["created_at"] >= DEFAULT_START).all() and (leads["created_at"] < DEFAULT_END).all()
    both = leads["converted_at"].notna() & leads["disqualified_at"].notna()
    assert not both.any()
    acts = checked.frame
    assert set(acts["type"]) <= set(ACTIVITY_TYPES)
    assert (acts["occurred_at"] <= DEFAULT_END).all()
    # No activity after the lead closed.
    closed = leads.set_index("lead_id")["converted_at"].fillna(leads.set_index("lead_id")["disqualified_at"])
    after = acts["occurred_at"] > acts["lead_id"].map(closed)
    assert not after.fillna(False).any()
    truth = pd.read_parquet(synthetic_dir / "truth.parquet")
    assert list(truth.columns) == ["lead_id", "as_of", "p_convert"]
    assert truth["p_convert"].between(0, 1).all()


def test_truth_covers_exactly_the_eligible_snapshots(frames):
    leads, truth = frames["leads"], frames["truth"]
    grid = snapshot_grid(DEFAULT_START, DEFAULT_END)
    closed = leads["converted_at"].fillna(leads["disqualified_at"])
    expected = sum(
        int(((leads["created_at"] < t) & ~(closed < t)).sum()) for t in grid
    )
    assert len(truth) == expected
    assert set(truth["as_of"].unique()) <= set(grid)
    assert not truth.duplicated(["lead_id", "as_of"]).any()


# --- marginals and correlations ------------------------------------------------------


def test_fit_marginals_within_bounds(frames):
    leads = frames["leads"]
    domain = leads["email"].str.split("@").str[1]
    free = domain.isin(FREE_MAIL_DOMAINS)
    size = leads["company_size"]
    assert 0.38 <= (leads["country"] == "US").mean() <= 0.52
    assert 0.20 <= free.mean() <= 0.40
    assert 0.02 <= (leads["seniority"] == "Student").mean() <= 0.07
    assert 0.003 <= domain.isin(COMPETITOR_DOMAINS).mean() <= 0.03
    assert leads["email"].str.fullmatch(r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]+").all()
    # Heavy tail: the 99th percentile company is far bigger than the median one.
    assert size.quantile(0.99) / size.median() > 30
    # Free mail is commoner in small companies; owners and chiefs too.
    assert free[size < 20].mean() > 2 * free[size > 1000].mean()
    top = leads["seniority"].isin(["Owner", "C-Level"])
    assert top[size < 20].mean() > 3 * top[size > 1000].mean()
    # Campaign sources carry a UTM campaign; organic ones do not.
    assert leads.loc[leads["source"] == "paid_search", "utm_campaign"].notna().all()
    assert leads.loc[leads["source"] == "organic_search", "utm_campaign"].isna().all()


def test_lead_volume_grows_with_weekday_seasonality(frames):
    created = frames["leads"]["created_at"]
    first_year = (created < DEFAULT_START + pd.Timedelta(days=364)).sum()
    assert len(created) - first_year > 1.3 * first_year
    weekend = created.dt.day_of_week >= 5
    assert weekend.mean() < 0.15  # 2/7 = 0.29 if flat


def test_activity_volume_and_mix(frames):
    acts, leads = frames["activities"], frames["leads"]
    per_lead = len(acts) / len(leads)
    assert 20 <= per_lead <= 45
    share = acts["type"].value_counts(normalize=True)
    assert set(share.index[:2]) == {"page_view", "email_open"}
    for rare in ("demo_request", "trial_signup"):
        assert 0.0005 < share[rare] < 0.02
    assert share.get("unsubscribe", 0) > 0


def test_conversion_base_rate_per_eligible_snapshot_is_5_to_15_percent(frames):
    leads = frames["leads"]
    grid = snapshot_grid(DEFAULT_START, DEFAULT_END - HORIZON)
    closed = leads["converted_at"].fillna(leads["disqualified_at"])
    eligible = converted = 0
    for t in grid:
        open_ = (leads["created_at"] < t) & ~(closed < t)
        eligible += int(open_.sum())
        conv = (leads["converted_at"] > t) & (leads["converted_at"] <= t + HORIZON)
        converted += int((open_ & conv).sum())
    rate = converted / eligible
    assert 0.05 <= rate <= 0.15
    assert 0.08 <= leads["converted_at"].notna().mean() <= 0.35


# --- ground truth --------------------------------------------------------------------


@pytest.mark.slow
def test_truth_is_calibrated_against_what_happened(crm, frames):
    """Bin by one half of the Monte Carlo paths, compare outcomes with the other half.

    Binning by the estimate that is tested would bias the extreme bins (winner's
    curse of a noisy estimate). Rows of one lead at successive snapshots share their
    outcome, so the error is cluster-robust by lead rather than binomial per row.
    """
    truth = frames["truth"].copy()
    truth["half_a"], truth["half_b"] = crm.truth_halves[:, 0], crm.truth_halves[:, 1]
    rows = realised(truth, frames["leads"])
    rows["bin"] = pd.qcut(rows["half_a"], 10, labels=False, duplicates="drop")
    rows["resid"] = rows["y"] - rows["half_b"]
    for _, group in rows.groupby("bin"):
        per_lead = group.groupby("lead_id")["resid"].sum()
        z = per_lead.sum() / np.sqrt((per_lead**2).sum())
        assert abs(z) < 4, (group["half_b"].mean(), group["y"].mean(), z)
    # Calibration in the large, with the full estimate.
    assert abs(rows["y"].mean() - rows["p_convert"].mean()) < 0.02
    auc = roc_auc_score(rows["y"], rows["p_convert"])
    assert auc > 0.75


def test_recent_activity_converts_more_than_old_activity_of_the_same_volume(frames):
    """Same number of activities in the last 60 days; the recent ones convert more."""
    leads, acts = frames["leads"], frames["activities"]
    closed = leads["converted_at"].fillna(leads["disqualified_at"])
    rows = []
    for t in snapshot_grid(DEFAULT_START + pd.Timedelta(days=90), DEFAULT_END - HORIZON)[::3]:
        window = acts[(acts["occurred_at"] < t) & (acts["occurred_at"] >= t - pd.Timedelta(days=60))]
        stats = window.groupby("lead_id")["occurred_at"].agg(["size", "max"])
        stats = stats[stats["size"].between(3, 12)]
        stats["days_since"] = (t - stats["max"]).dt.days
        stats["as_of"] = t
        rows.append(stats)
    snap = pd.concat(rows).reset_index()
    snap = snap.merge(leads[["lead_id", "converted_at"]].assign(closed=closed), on="lead_id")
    snap = snap[~(snap["closed"] < snap["as_of"])]
    snap["y"] = (snap["converted_at"] > snap["as_of"]) & (snap["converted_at"] <= snap["as_of"] + HORIZON)
    recent = snap.loc[snap["days_since"] <= 7, "y"].mean()
    old = snap.loc[snap["days_since"] >= 30, "y"].mean()
    assert recent > 1.5 * old


# --- configuration and CLI -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_leads": 0}, "n_leads"),
        ({"seed": -1}, "seed"),
        ({"truth_paths": 0}, "truth_paths"),
        ({"truth_sample": -5}, "truth_sample"),
        ({"start": "2024-10-07T12:00:00Z"}, "start"),
        ({"end": "2024-10-10"}, "end"),
        ({"horizon": pd.Timedelta(hours=36)}, "horizon"),
    ],
)
def test_bad_config_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of GeneratorConfig must be"):
        GeneratorConfig(**kwargs)


def test_truth_sample_default_covers_everyone_up_to_100k():
    assert GeneratorConfig(n_leads=100_000).truth_leads == 100_000
    assert GeneratorConfig(n_leads=100_001).truth_leads == 20_000
    assert GeneratorConfig(n_leads=1_000_000, truth_sample=5_000).truth_leads == 5_000


def test_cli_generate_writes_the_three_files(tmp_path: Path):
    result = CliRunner().invoke(
        app, ["generate", "--leads", "200", "--seed", "1", "--out", str(tmp_path), "--truth-paths", "2"]
    )
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert (tmp_path / name).is_file()
    assert len(pd.read_parquet(tmp_path / "leads.parquet")) == 200


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--leads", "-3"], "--leads"),
        (["--start", "2024-13-40"], "--start"),
        (["--start", "2024-10-07T10:00"], "--start"),
        (["--end", "2024-10-01"], "--end"),
        (["--horizon", "soon"], "--horizon"),
        (["--truth-sample", "-1"], "--truth-sample"),
    ],
)
def test_cli_bad_arguments_name_the_option(tmp_path: Path, args, option):
    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path), "--leads", "10", *args])
    assert result.exit_code == 2
    assert option in result.output
    assert not (tmp_path / "leads.parquet").exists()


def test_one_truth_path_works_without_halves():
    crm = generate(GeneratorConfig(n_leads=150, seed=2, truth_paths=1))
    assert crm.truth_halves is None
    assert crm.truth.num_rows > 0
