"""The training-set builder: eligibility, labels, censoring, columns, the grid, the CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.build import build_training_set
from features.registry import categorical_features, feature_names, numeric_features
from features.schema import validate_activities, validate_leads
from leadscore.cli import app

REPO = Path(__file__).resolve().parents[2]
DAY = pd.Timedelta(days=1)


def load_benchmark():
    """The benchmark module, whose naive per-snapshot builder is our reference."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_training_set", REPO / "benchmarks" / "training_set.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


def crm_tables(request, bench, n_leads: int = 3_000):
    """Validated (leads, activities): the synthetic fixture if present, else quick data."""
    try:
        directory = request.getfixturevalue("synthetic_dir")
    except pytest.FixtureLookupError:
        leads, acts = bench.quick_data(n_leads, n_leads * 30, seed=7)
    else:
        leads = pd.read_parquet(Path(directory) / "leads.parquet")
        acts = pd.read_parquet(Path(directory) / "activities.parquet")
    leads = validate_leads(leads)
    return leads, validate_activities(acts, lead_ids=leads["lead_id"]).frame


def small_world():
    """Three leads around the Monday grid point 2026-01-12 (grid every 7 days)."""
    leads = validate_leads(
        pd.DataFrame(
            {
                "lead_id": ["early", "at_grid", "converts"],
                "created_at": [
                    "2026-01-01T00:00:00Z",
                    "2026-01-12T00:00:00Z",  # created exactly on a grid point
                    "2026-01-02T00:00:00Z",
                ],
                "converted_at": [None, None, "2026-01-19T00:00:00Z"],  # exactly on a grid point
                "disqualified_at": ["2026-02-02T00:00:00Z", None, None],
            }
        )
    )
    acts = validate_activities(
        pd.DataFrame(
            {
                "lead_id": ["early", "converts", "at_grid"],
                "occurred_at": [
                    "2026-01-03T00:00:00Z",
                    "2026-01-05T00:00:00Z",
                    "2026-06-01T00:00:00Z",  # the data end
                ],
                "type": ["page_view", "demo_request", "page_view"],
            }
        )
    ).frame
    return leads, acts


def test_eligibility_labels_and_order():
    leads, acts = small_world()
    out = build_training_set(leads, acts)
    got = {(r.lead_id, r.as_of.strftime("%m-%d")): r.label for r in out.itertuples()}
    # Created strictly before as_of: "at_grid" is not eligible at 01-12, only from 01-19.
    assert ("at_grid", "01-12") not in got and got[("at_grid", "01-19")] == 0
    # Converted at exactly 01-19: not converted *before* it, so eligible there, label 1.
    assert got[("converts", "01-12")] == 1 and got[("converts", "01-19")] == 1
    assert ("converts", "01-26") not in got
    # Disqualified at 02-02: eligible up to and including 02-02, not after.
    assert ("early", "02-02") in got and ("early", "02-09") not in got
    # Lead-major: each lead's rows adjacent, in the input order, then by as_of.
    order = {lead: i for i, lead in enumerate(leads["lead_id"])}
    keys = list(zip(out["lead_id"].map(order), out["as_of"], strict=True))
    assert keys == sorted(keys)
    assert (out["as_of"].dt.day_of_week == 0).all()


def test_censored_snapshots_are_dropped_by_default_and_flagged_when_kept():
    leads, acts = small_world()
    end = pd.Timestamp("2026-06-01T00:00:00Z")
    dropped = build_training_set(leads, acts)
    assert (dropped["as_of"] + pd.Timedelta(days=90) <= end).all()
    assert "label_complete" not in dropped.columns
    kept = build_training_set(leads, acts, censored="keep")
    assert list(kept.columns[:4]) == ["lead_id", "as_of", "label", "label_complete"]
    complete = kept["as_of"] + pd.Timedelta(days=90) <= end
    assert kept["label_complete"].tolist() == complete.tolist()
    assert kept["as_of"].max() == end  # 2026-06-01 is a Monday
    pd.testing.assert_frame_equal(
        kept[kept["label_complete"]].drop(columns="label_complete").reset_index(drop=True),
        dropped,
    )


def test_columns_and_dtypes(request, bench):
    leads, acts = crm_tables(request, bench)
    out = build_training_set(leads.head(300), acts[acts["lead_id"].isin(leads["lead_id"].head(300))])
    assert list(out.columns) == ["lead_id", "as_of", "label", *feature_names()]
    assert str(out["lead_id"].dtype) == "string"
    assert str(out["as_of"].dtype) == "datetime64[ns, UTC]"
    assert out["label"].dtype == "int64" and set(out["label"].unique()) <= {0, 1}
    assert all(str(out[c].dtype) == "string" for c in categorical_features())
    assert all(out[c].dtype == "float64" for c in numeric_features())
    assert not out.duplicated(["lead_id", "as_of"]).any()


@pytest.mark.slow
def test_fast_builder_equals_the_naive_per_snapshot_build(bench):
    leads, acts = bench.quick_data(300, 9_000, seed=3)
    leads = validate_leads(leads)
    acts = validate_activities(acts, lead_ids=leads["lead_id"]).frame
    fast = build_training_set(leads, acts)
    naive = bench.naive_training_set(leads, acts)
    assert len(fast) > 1_000
    bench.assert_same_rows(fast, naive)


@pytest.mark.slow
def test_other_every_and_horizon(bench):
    leads, acts = bench.quick_data(200, 4_000, seed=4)
    leads = validate_leads(leads)
    acts = validate_activities(acts, lead_ids=leads["lead_id"]).frame
    fast = build_training_set(leads, acts, every=pd.Timedelta(days=14), horizon=pd.Timedelta(days=30))
    grid = bench.snapshot_grid(leads["created_at"].min(), bench.data_end(leads, acts), 14 * DAY)
    naive = bench.naive_training_set(
        leads, acts, horizon=30 * DAY,
        snapshots=grid[grid + 30 * DAY <= bench.data_end(leads, acts)],
    )
    bench.assert_same_rows(fast, naive)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": pd.Timedelta(0)}, "The 'every' parameter must be a positive Timedelta"),
        ({"horizon": "90d"}, "The 'horizon' parameter must be a positive Timedelta"),
        ({"censored": "maybe"}, "The 'censored' parameter must be 'drop', 'keep' or 'resolved'. Got 'maybe'"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    leads, acts = small_world()
    with pytest.raises(ValueError, match=message):
        build_training_set(leads, acts, **kwargs)


def test_snapshots_join_the_generator_truth(synthetic_dir):
    """Every training row is a truth row on (lead_id, as_of), with the same label."""
    directory = Path(synthetic_dir)
    leads = validate_leads(pd.read_parquet(directory / "leads.parquet"))
    acts = validate_activities(
        pd.read_parquet(directory / "activities.parquet"), lead_ids=leads["lead_id"]
    ).frame
    truth = pd.read_parquet(directory / "truth.parquet")
    out = build_training_set(leads, acts)
    truth = truth.assign(lead_id=truth["lead_id"].astype("string"))
    joined = out[["lead_id", "as_of", "label"]].merge(
        truth, on=["lead_id", "as_of"], how="left", indicator=True, suffixes=("", "_truth")
    )
    assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"].head()
    if "label_truth" in joined.columns:
        np.testing.assert_array_equal(joined["label"], joined["label_truth"].astype("int64"))


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    leads, acts = small_world()
    directory = tmp_path / "data"
    directory.mkdir()
    leads.to_parquet(directory / "leads.parquet")
    acts.to_parquet(directory / "activities.parquet")
    return directory


def test_cli_writes_the_training_set_atomically(data_dir: Path, tmp_path: Path):
    out = tmp_path / "sets" / "train.parquet"
    result = CliRunner().invoke(
        app, ["build-training-set", "--data", str(data_dir), "--out", str(out), "--every", "1w"]
    )
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out)
    leads, acts = small_world()
    expected = build_training_set(leads, acts)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    assert list(written.columns) == list(expected.columns)
    assert [p.name for p in out.parent.iterdir()] == ["train.parquet"]  # no temp file left


def test_cli_keep_censored_adds_the_flag(data_dir: Path, tmp_path: Path):
    out = tmp_path / "train.parquet"
    result = CliRunner().invoke(
        app,
        ["build-training-set", "--data", str(data_dir), "--out", str(out), "--keep-censored",
         "--horizon", "30d"],
    )
    assert result.exit_code == 0, result.output
    assert "label_complete" in pd.read_parquet(out).columns


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--every", "weekly"], "--every"),
        (["--horizon", "0d"], "--horizon"),
        (["--start", "yesterday"], "--start"),
    ],
)
def test_cli_bad_options_name_the_option(data_dir: Path, tmp_path: Path, extra, option):
    result = CliRunner().invoke(
        app,
        ["build-training-set", "--data", str(data_dir), "--out", str(tmp_path / "t.parquet"), *extra],
    )
    assert result.exit_code == 2
    assert option in result.output
    assert not (tmp_path / "t.parquet").exists()


def test_cli_missing_tables_name_data(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        app, ["build-training-set", "--data", str(empty), "--out", str(tmp_path / "t.parquet")]
    )
    assert result.exit_code == 2
    assert "--data" in result.output and "leads.parquet" in result.output


def test_cli_rejects_invalid_data_with_the_field_named(data_dir: Path, tmp_path: Path):
    bad = pd.DataFrame(
        {"lead_id": ["ghost"], "occurred_at": ["2026-01-03T00:00:00Z"], "type": ["page_view"]}
    )
    bad.to_parquet(data_dir / "activities.parquet")
    result = CliRunner().invoke(
        app, ["build-training-set", "--data", str(data_dir), "--out", str(tmp_path / "t.parquet")]
    )
    assert result.exit_code != 0
    assert "activities.lead_id: 'ghost' is not a known lead" in str(result.exception)
