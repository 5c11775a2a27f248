"""A dataset spec with created_at and converted_at: the label looks ``horizon`` ahead.

"Converted within the horizon after created_at", not "ever converted"; the purge gap of
the time split is the horizon; leads whose window the data's end cuts off are dropped
and counted. And a spec split on tied ``created_at`` values logs counts that add up.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from leadscore.cli import app
from training.pipeline import label_within_horizon, training_data_from_spec

from .conftest import MLFLOW_WARNINGS

runner = CliRunner(env={"COLUMNS": "300"})

SPEC = {
    "version": 1,
    "source": "leads.csv",
    "columns": {"id": "id", "created_at": "created", "converted_at": "won_at",
                "categorical": ["src"], "numeric": ["visits"]},
}

# The data end at 2026-06-30 (the latest timestamp: e's conversion).
TINY_CSV = """id,created,won_at,src,visits
a,2026-01-01T00:00:00Z,2026-01-20T00:00:00Z,web,5
b,2026-01-01T00:00:00Z,2026-03-15T00:00:00Z,web,1
c,2026-01-01T00:00:00Z,,ads,0
d,2026-06-20T00:00:00Z,,ads,2
e,2026-06-10T00:00:00Z,2026-06-30T00:00:00Z,web,9
f,2026-05-31T00:00:00Z,,ads,3
g,2026-02-01T00:00:00Z,2026-03-03T00:00:00Z,web,4
"""
# a: converted after 19 days -> 1. b: after 73 days -> 0 at 30 days, 1 at 90.
# c: never, window long past -> 0. d: not converted, window ends 07-20 after the data
# -> censored. e: converted on the data's last day -> 1. f: window ends exactly at the
# data's end (closed window) -> 0, kept. g: converted on day 30 exactly -> 1.


def _write(tmp_path: Path, csv: str, spec: dict = SPEC) -> Path:
    (tmp_path / "leads.csv").write_text(csv, encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _labels(data) -> dict[str, int]:
    return dict(zip(data.frame["lead_id"], data.frame["label"].astype(int), strict=True))


def test_label_is_converted_within_the_horizon_and_censored_leads_are_dropped(tmp_path):
    data = training_data_from_spec(_write(tmp_path, TINY_CSV), horizon=pd.Timedelta(days=30))
    assert _labels(data) == {"a": 1, "b": 0, "c": 0, "e": 1, "f": 0, "g": 1}
    assert data.purge_gap == pd.Timedelta(days=30)
    assert data.time_column == "created_at"
    assert data.info["n_censored"] == 1 and data.info["n_rows_loaded"] == 7
    assert data.info["data_end"] == "2026-06-30T00:00:00+00:00"


def test_the_default_horizon_is_90_days(tmp_path):
    data = training_data_from_spec(_write(tmp_path, TINY_CSV))
    # b converts on day 73: inside 90 days. Not converted, d and f are now censored (their
    # windows end after the data's); e converted in time, so its label is known.
    assert _labels(data) == {"a": 1, "b": 1, "c": 0, "e": 1, "g": 1}
    assert data.purge_gap == pd.Timedelta(days=90) and data.info["n_censored"] == 2


def test_label_within_horizon_against_a_naive_loop():
    rng = np.random.default_rng(3)
    created = pd.Series(pd.Timestamp("2026-01-01", tz="UTC")
                        + pd.to_timedelta(rng.integers(0, 200, 300), unit="D"))
    delay = pd.to_timedelta(rng.integers(0, 120, 300), unit="D")
    converted = (created + delay).where(rng.uniform(size=300) < 0.4)
    horizon = pd.Timedelta(days=45)
    label, keep, end = label_within_horizon(created, converted, horizon)
    end_naive = max(list(created) + [c for c in converted if pd.notna(c)])
    assert end == end_naive
    for i in range(300):
        won = pd.notna(converted[i]) and converted[i] <= created[i] + horizon
        assert label[i] == int(won)
        assert keep[i] == (won or created[i] + horizon <= end_naive)


def test_a_horizon_needs_created_at_and_converted_at(tmp_path):
    spec = {**SPEC, "columns": {**SPEC["columns"], "converted_at": None,
                                "label": "won"}}
    spec["columns"] = {k: v for k, v in spec["columns"].items() if v is not None}
    path = _write(tmp_path, "id,created,won,src,visits\na,2026-01-01T00:00:00Z,1,web,1\n",
                  spec)
    with pytest.raises(ValueError, match="needs a spec with both created_at and converted_at"):
        training_data_from_spec(path, horizon=pd.Timedelta(days=30))
    assert _labels(training_data_from_spec(path)) == {"a": 1}  # no horizon: the label as is
    result = runner.invoke(app, ["train", "--dataset", str(path), "--horizon", "30d"])
    assert result.exit_code == 2 and "needs a spec with both" in result.output


def _export(n: int = 900, seed: int = 0) -> str:
    """A CRM export: creation days over a year (many leads per day), conversions after
    delays of up to ~5 months, unseen when after the export date."""
    rng = np.random.default_rng(seed)
    start, export = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2026-01-01", tz="UTC")
    created = start + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    visits = rng.poisson(3, n)
    converts = rng.uniform(size=n) < 1 / (1 + np.exp(-(-1.5 + 0.4 * visits)))
    won = created + pd.to_timedelta(rng.integers(1, 150, n), unit="D")
    won = pd.Series(won).where(converts & (won <= export))
    frame = pd.DataFrame({
        "id": [f"L{i}" for i in range(n)], "created": pd.Series(created).map(pd.Timestamp.isoformat),
        "won_at": won.map(lambda t: "" if pd.isna(t) else t.isoformat()),
        "src": rng.choice(["web", "ads", "event"], n), "visits": visits,
    })
    return frame.to_csv(index=False)


@pytest.mark.slow
@MLFLOW_WARNINGS[0]
@MLFLOW_WARNINGS[1]
@MLFLOW_WARNINGS[2]
def test_train_with_a_spec_uses_the_horizon_for_label_gap_and_censoring(tmp_path):
    path = _write(tmp_path, _export())
    result = runner.invoke(app, ["train", "--dataset", str(path), "--horizon", "30d",
                                 "--num-boost-round", "40"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])

    data = training_data_from_spec(path, horizon=pd.Timedelta(days=30))
    # Not "ever converted": some kept leads converted, but after 30 days.
    ever = training_data_from_spec(path, horizon=pd.Timedelta(days=365))
    both = data.frame.set_index("lead_id")["label"].align(
        ever.frame.set_index("lead_id")["label"], join="inner")
    assert ((both[0] == 0) & (both[1] == 1)).sum() > 20
    assert summary["n_censored"] == data.info["n_censored"] > 0
    split = summary["split"]
    assert split["purge_gap"] == "30 days 00:00:00"
    counts = [split[k] for k in ("n_train", "n_valid", "n_test", "n_purged")]
    assert min(counts) >= 0 and sum(counts) == len(data.frame)

    import mlflow
    from leadscore.settings import Settings
    from training.tracking import configure

    client = configure(Settings())
    run = client.get_run(summary["run_id"])
    params = run.data.params
    assert params["horizon"] == "30 days 00:00:00"
    assert params["n_censored"] == str(data.info["n_censored"])
    assert params["n_purged"] == str(split["n_purged"])
    assert params["label_definition"] == "converted within 30 days 00:00:00 after created_at"
    # The logged test rows carry the 30-day labels, not "ever converted".
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                artifact_path="evaluation/test_frame.parquet",
                                                dst_path=str(tmp_path / "dl"))
    test_frame = pd.read_parquet(local)
    expected = data.frame.set_index("lead_id")["label"]
    assert (test_frame.set_index("lead_id")["label"] == expected.loc[test_frame["lead_id"]]).all()
    # The purge gap is the horizon: validation labels close before the test window opens.
    created = pd.to_datetime(test_frame["created_at"], utc=True)
    assert created.min() > pd.Timestamp(params["valid_end"]) + pd.Timedelta(days=30)


@pytest.mark.slow
@MLFLOW_WARNINGS[0]
@MLFLOW_WARNINGS[1]
@MLFLOW_WARNINGS[2]
def test_a_label_spec_split_on_tied_created_at_logs_counts_that_add_up(tmp_path):
    # A label column (no horizon, no gap) and creation times rounded to the day, many
    # leads a day: the rows of a boundary day once went to two parts (n_purged < 0).
    rng = np.random.default_rng(1)
    n = 900
    visits = rng.poisson(3, n)
    frame = pd.DataFrame({
        "id": [f"L{i}" for i in range(n)],
        "created": (pd.Timestamp("2025-01-01", tz="UTC")
                    + pd.to_timedelta(rng.integers(0, 12, n), unit="D")).map(pd.Timestamp.isoformat),
        "won": (rng.uniform(size=n) < 1 / (1 + np.exp(-(-1.5 + 0.4 * visits)))).astype(int),
        "src": rng.choice(["web", "ads", "event"], n), "visits": visits,
    })
    spec = {**SPEC, "columns": {"id": "id", "created_at": "created", "label": "won",
                                "categorical": ["src"], "numeric": ["visits"]}}
    path = _write(tmp_path, frame.to_csv(index=False), spec)
    result = runner.invoke(app, ["train", "--dataset", str(path), "--num-boost-round", "20"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    from leadscore.settings import Settings
    from training.tracking import configure

    params = configure(Settings()).get_run(summary["run_id"]).data.params
    counts = [int(params[k]) for k in ("n_train", "n_valid", "n_test", "n_purged")]
    assert min(counts) >= 0 and sum(counts) == n
    assert pd.Timestamp(params["train_end"]) < pd.Timestamp(params["valid_start"])
    assert pd.Timestamp(params["valid_end"]) < pd.Timestamp(params["test_start"])
