"""A CRM of our own invention, in its own words, from a version-2 spec to a model.

Its activity types are not ours ("Visit Webpage", "Opened Email", "Booked Call"), its
conversions live in a deals table, and one type is left unmapped. The spec maps them to
kinds; the feature set, the training set and the model follow.
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
from training.from_spec import (
    build_spec_training_set,
    feature_set_for,
    label_known_at,
    training_data_for_spec,
)
from training.split import time_split

from .conftest import MLFLOW_WARNINGS

runner = CliRunner(env={"COLUMNS": "300"})

TYPES = {"Visit Webpage": 0.4, "Opened Email": 0.3, "Booked Call": 0.05, "Webinar": 0.1,
         "Sales Ping": 0.15}
SPEC = {
    "version": 2,
    "name": "acme",
    "tables": {
        "leads": {
            "source": {"file": "leads.csv"},
            "read": {"assume_utc": True},
            "columns": {
                "id": "Lead Number",
                "created_at": "Created On",
                "categorical": [{"column": "Lead Source", "label": "Lead source"}],
                "numeric": [{"column": "Employees", "label": "Company size"}],
                "pii": ["Email"],
            },
        },
        "outcomes": {
            "source": {"file": "deals.csv"},
            "read": {"assume_utc": True},
            "columns": {"lead_id": "Lead", "converted_at": "Won On"},
        },
        "activities": {
            "source": {"file": "activities.csv"},
            "read": {"assume_utc": True},
            "columns": {"lead_id": "Lead", "occurred_at": "When", "type": "Activity"},
            "kinds": {
                "web": {"types": ["Visit Webpage"], "label": "visited the website"},
                "email": {"types": ["Opened Email"], "label": "opened an email", "weight": 0.5},
                "call": {"types": ["Booked Call"], "label": "booked a call", "weight": 6.0,
                         "key_action": True},
                "webinar": {"types": ["Webinar"], "label": "attended a webinar", "weight": 3.0},
            },
        },
    },
    "training": {"horizon": "60d", "every": "14d"},
}


def write_crm(folder: Path, n: int = 1500, seed: int = 0, spec: dict = SPEC) -> Path:
    """Leads, their activities and won deals, with conversion driven by calls and source."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    created = start + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    source = rng.choice(["Google", "Referral", "Olark Chat"], n, p=[0.5, 0.2, 0.3])
    intent = rng.normal(size=n) + np.where(source == "Referral", 1.0, 0.0)
    leads = pd.DataFrame({
        "Lead Number": [f"A{i:05d}" for i in range(n)],
        "Created On": created.strftime("%Y-%m-%d %H:%M:%S"),
        "Lead Source": source,
        "Employees": rng.lognormal(4, 1, n).round(),
        "Email": [f"person{i}@example.com" for i in range(n)],
    })
    rows, deals = [], []
    for i in range(n):
        k = rng.poisson(np.exp(1.2 + 0.5 * intent[i]))
        at = created[i] + pd.to_timedelta(rng.uniform(0, 80, k), unit="D")
        kinds = rng.choice(list(TYPES), k, p=list(TYPES.values()))
        rows += [(leads["Lead Number"][i], t.strftime("%Y-%m-%d %H:%M:%S"), a)
                 for t, a in zip(at, kinds, strict=True)]
        calls = at[kinds == "Booked Call"]
        if len(calls) and rng.uniform() < 0.6 + 0.1 * np.tanh(intent[i]):
            deals.append((leads["Lead Number"][i], (calls.min() + pd.Timedelta(days=5))
                          .strftime("%Y-%m-%d %H:%M:%S")))
        elif rng.uniform() < 0.03:
            deals.append((leads["Lead Number"][i], (created[i] + pd.Timedelta(days=40))
                          .strftime("%Y-%m-%d %H:%M:%S")))
    leads.to_csv(folder / "leads.csv", index=False)
    pd.DataFrame(rows, columns=["Lead", "When", "Activity"]).to_csv(folder / "activities.csv",
                                                                     index=False)
    pd.DataFrame(deals, columns=["Lead", "Won On"]).to_csv(folder / "deals.csv", index=False)
    path = folder / "acme.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def crm(tmp_path: Path) -> Path:
    return write_crm(tmp_path)


def _tables(path: Path):
    from features.spec import load_spec, load_tables

    return load_tables(load_spec(path))


def test_the_feature_set_follows_the_spec(crm):
    tables = _tables(crm)
    fs = feature_set_for(tables)
    names = fs.feature_names()
    assert {"lead_source", "employees", "web_count_7d", "call_count_90d", "days_since_last_call",
            "webinar_count_30d", "engagement_decayed_hl30d"} <= set(names)
    assert not any(n.startswith("sales_ping") or "email_address" in n for n in names)
    assert "email" not in names  # PII is never a feature; 'email' here would be the column
    assert tables.unmapped_types == {"Sales Ping": int((tables.activities["type"] == "Sales Ping").sum())}
    frame, used = build_spec_training_set(tables, fs)
    assert used["horizon"] == "60d" and used["snapshots"] == "every 14d"
    assert list(frame.columns[:3]) == ["lead_id", "as_of", "label"]
    # A generic-activity count includes the unmapped type; the kinds' counts do not.
    kinds = [f"{k}_count_90d" for k in ("web", "email", "call", "webinar")]
    assert (frame["activity_count_90d"] >= frame[kinds].sum(axis=1)).all()
    assert (frame["activity_count_90d"] > frame[kinds].sum(axis=1)).any()


def test_events_after_a_cut_change_no_earlier_snapshot(crm, tmp_path):
    """Deleting every event after a cut changes no row whose as_of is before the cut."""
    cut = pd.Timestamp("2025-06-15T00:00:00Z")
    acts = pd.read_csv(crm.parent / "activities.csv")
    later = pd.to_datetime(acts["When"], utc=True) >= cut
    assert later.any()
    truncated = tmp_path / "cut"
    truncated.mkdir()
    for name in ("leads.csv", "deals.csv", "acme.yaml"):
        (truncated / name).write_bytes((crm.parent / name).read_bytes())
    acts[~later].to_csv(truncated / "activities.csv", index=False)
    full, _ = build_spec_training_set(_tables(crm))
    cut_frame, _ = build_spec_training_set(_tables(truncated / "acme.yaml"))
    features = feature_set_for(_tables(crm)).feature_names()
    before = full[full["as_of"] <= cut].reset_index(drop=True)
    before_cut = cut_frame[cut_frame["as_of"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(before[["lead_id", "as_of", *features]],
                                  before_cut[["lead_id", "as_of", *features]])
    after = full[full["as_of"] > cut].reset_index(drop=True)
    after_cut = cut_frame[cut_frame["as_of"] > cut].reset_index(drop=True)
    assert not after[features].equals(after_cut[features])  # later rows did see the events


def test_label_known_at_is_the_outcome_when_it_comes_first():
    leads = pd.DataFrame({
        "lead_id": pd.array(["a", "b", "c"], dtype="string"),
        "converted_at": pd.to_datetime(["2025-01-10", None, "2025-12-01"], utc=True),
        "disqualified_at": pd.to_datetime([None, "2025-01-20", None], utc=True),
    })
    rows = pd.DataFrame({"lead_id": pd.array(["a", "b", "c", "a"], dtype="string"),
                         "as_of": pd.to_datetime(["2025-01-01"] * 3 + ["2025-01-10"], utc=True)})
    known = label_known_at(leads, rows, pd.Timedelta(days=30))
    assert list(known) == list(pd.to_datetime(
        ["2025-01-10", "2025-01-20", "2025-01-31", "2025-01-10"], utc=True))


def test_a_cohort_split_with_fixed_starts_and_known_labels():
    as_of = pd.to_datetime(["2013-03-01"] * 4 + ["2013-11-01"] * 3 + ["2014-11-01"] * 3, utc=True)
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0, 1, 1])
    known = as_of + pd.Timedelta(days=200)  # every label settled within 200 days
    split = time_split(as_of, y, horizon=pd.Timedelta(days=300), known_at=known,
                       valid_from=pd.Timestamp("2013-10-01", tz="UTC"),
                       test_from=pd.Timestamp("2014-10-01", tz="UTC"))
    assert (list(split.train), list(split.valid), list(split.test)) == (
        [0, 1, 2, 3], [4, 5, 6], [7, 8, 9])
    assert split.purged == 0
    # By the whole horizon instead, the first cohort's labels reach into validation.
    with pytest.raises(Exception, match="split|too little|train"):
        time_split(as_of, y, horizon=pd.Timedelta(days=300),
                   valid_from=pd.Timestamp("2013-10-01", tz="UTC"),
                   test_from=pd.Timestamp("2014-10-01", tz="UTC"))
    with pytest.raises(ValueError, match="before 'test_from'"):
        time_split(as_of, y, horizon=pd.Timedelta(0), valid_from=pd.Timestamp("2015-01-01", tz="UTC"),
                   test_from=pd.Timestamp("2014-10-01", tz="UTC"))
    with pytest.raises(ValueError, match="none before its as_of"):
        time_split(as_of, y, horizon=pd.Timedelta(0), known_at=as_of - pd.Timedelta(days=1))


@MLFLOW_WARNINGS[0]
@MLFLOW_WARNINGS[1]
@MLFLOW_WARNINGS[2]
def test_train_and_promote_a_spec_with_activities(crm):
    import mlflow

    out = crm.parent / "train.parquet"
    built = runner.invoke(app, ["build-training-set", "--dataset", str(crm), "--out", str(out)])
    assert built.exit_code == 0, built.output
    assert "Sales Ping" in built.output and "feature set spec:acme:" in built.output
    frame = pd.read_parquet(out)
    assert len(frame) > 1000 and frame["label"].between(0, 1).all()

    result = runner.invoke(app, ["train", "--dataset", str(crm), "--promote",
                                 "--num-boost-round", "60"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model_version"] == "1" and summary["promotion"]["promoted"]
    assert summary["metrics"]["roc_auc"] > 0.7  # booked calls drive conversion here

    data = training_data_for_spec(crm)
    model = mlflow.pyfunc.load_model("models:/lead-scoring@champion").unwrap_python_model().model
    assert model.feature_set_version == data.schema.version
    rebuilt = model.feature_set()
    assert rebuilt.version == data.schema.version and "call_count_7d" in rebuilt.feature_names()
    run = mlflow.get_run(model_version_run(summary))
    assert run.data.tags["feature_set_version"].startswith("spec:acme:")
    files = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "dataset")}
    assert {"dataset/acme.yaml", "dataset/feature_set.json", "dataset/policies.json"} <= files
    # Every snapshot's features come from events strictly before it: the same row
    # recomputed at its own as_of with features_at agrees.
    from features.online import features_at

    tables = _tables(crm)
    row = data.frame.sample(1, random_state=1).iloc[0]
    lead = tables.leads[tables.leads["lead_id"] == row["lead_id"]]
    again = features_at(lead, tables.activities, pd.Series([row["as_of"]]), feature_set=rebuilt)
    for name in rebuilt.feature_names():
        got, want = again[name].iloc[0], row[name]
        assert (pd.isna(got) and pd.isna(want)) or got == want, name


def model_version_run(summary: dict) -> str:
    return summary["run_id"]


@pytest.mark.integration
def test_the_same_crm_in_postgresql_gives_the_same_training_set(crm, tmp_path, postgres_url,
                                                                 monkeypatch):
    """A spec whose tables come from a database URL: identical to the same data in files."""
    from tests.postgres import load_frames

    frames = {}
    for name in ("leads", "activities", "deals"):
        frame = pd.read_csv(crm.parent / f"{name}.csv")
        for column in ("Created On", "When", "Won On"):
            if column in frame.columns:
                frame[column] = pd.to_datetime(frame[column]).dt.tz_localize("UTC")
        frames[name] = frame
    load_frames(postgres_url, frames)
    spec = json.loads(json.dumps(SPEC))
    for table, name in (("leads", "leads"), ("outcomes", "deals"), ("activities", "activities")):
        spec["tables"][table]["source"] = {"url": "${ACME_DB}", "table": name}
    in_db = tmp_path / "db"
    in_db.mkdir()
    path = in_db / "acme.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("ACME_DB", postgres_url)

    from_files, _ = build_spec_training_set(_tables(crm))
    db_tables = _tables(path)
    from_db, _ = build_spec_training_set(db_tables)
    assert feature_set_for(db_tables).version == feature_set_for(_tables(crm)).version
    pd.testing.assert_frame_equal(from_db, from_files)
    assert "password" not in json.dumps(db_tables.sources)


def test_the_spec_alone_gives_the_feature_set_training_derives(crm):
    from features.spec import example_spec_path, load_spec
    from training.from_spec import spec_feature_set

    assert spec_feature_set(load_spec(crm)).version == feature_set_for(_tables(crm)).version
    oulad = load_spec(example_spec_path("oulad"))
    assert spec_feature_set(oulad).feature_names()[:2] == ["product", "region"]
    xedu = load_spec(example_spec_path("x-education"))
    assert not spec_feature_set(xedu).has_time
    assert spec_feature_set(load_spec(example_spec_path("builtin"))).version == "2026.11.1"


def test_a_lead_won_back_after_a_disqualification_is_known_only_when_it_converts():
    """Found in review: a disqualification settled the label even when the lead converted
    later within the horizon (its 1 then counted as known before it happened)."""
    leads = pd.DataFrame({
        "lead_id": pd.array(["back", "lost"], dtype="string"),
        "converted_at": pd.to_datetime(["2025-03-20", None], utc=True),
        "disqualified_at": pd.to_datetime(["2025-02-10", "2025-02-10"], utc=True),
    })
    rows = pd.DataFrame({"lead_id": pd.array(["back", "lost"], dtype="string"),
                         "as_of": pd.to_datetime(["2025-02-01"] * 2, utc=True)})
    known = label_known_at(leads, rows, pd.Timedelta(days=90))
    assert list(known) == list(pd.to_datetime(["2025-03-20", "2025-02-10"], utc=True))


def test_resolved_censoring_drops_what_is_still_open_and_keeps_what_settled():
    from features.build import build_training_set
    from features.registry import FeatureSet, FitColumn

    fs = FeatureSet.from_definition("tiny", [FitColumn("src", "categorical", "Source")],
                                    has_activities=False)
    stamp = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    leads = pd.DataFrame({
        "lead_id": pd.array(["won", "lost", "open", "back"], dtype="string"),
        "created_at": [stamp("2025-01-01")] * 4,
        "converted_at": pd.Series([stamp("2025-03-01"), pd.NaT, pd.NaT, stamp("2025-06-25")],
                                  dtype="datetime64[ns, UTC]"),
        "disqualified_at": pd.Series([pd.NaT, stamp("2025-02-15"), pd.NaT, stamp("2025-02-15")],
                                     dtype="datetime64[ns, UTC]"),
        "src": pd.array(["a", "b", "c", "d"], dtype="string"),
    })
    acts = pd.DataFrame({"lead_id": pd.array([], dtype="string"),
                         "occurred_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                         "type": pd.array([], dtype="string")})
    kwargs = dict(horizon=pd.Timedelta(days=180), start=stamp("2025-01-01"),
                  end=stamp("2025-02-01"), every=pd.Timedelta(days=31), feature_set=fs)
    resolved = build_training_set(leads, acts, censored="resolved", **kwargs)
    dropped = build_training_set(leads, acts, censored="drop", **kwargs)
    # The data end (the last timestamp, 06-25) is before every snapshot's horizon: 'drop'
    # keeps nothing; 'resolved' keeps the won and the lost lead and drops the open one and
    # the one disqualified then won back (its 0 was not final; its 1 is at 06-25, within
    # the horizon and the data: known).
    assert len(dropped) == 0
    assert sorted(resolved["lead_id"]) == ["back", "lost", "won"]
    assert dict(zip(resolved["lead_id"], resolved["label"], strict=True)) == {
        "won": 1, "lost": 0, "back": 1}


@pytest.mark.usefixtures("isolated_env")
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")
@pytest.mark.filterwarnings("ignore:Operation with range is deprecated")
def test_the_cold_start_rules_are_fitted_on_training_rows_only(crm):
    """The starter rules the model is compared with (and ships) learn from the training
    window alone: the comparison on the test window's no-activity leads is honest."""
    from dataclasses import replace

    from leadscore.settings import Settings
    from training.from_spec import SpecRulesBaseline
    from training.pipeline import TrainOptions, train

    data = training_data_for_spec(crm)
    seen: list[pd.DataFrame] = []

    class Spy(SpecRulesBaseline):
        def fit(self, train_rows):
            seen.append(train_rows[["lead_id", "as_of"]].copy())
            return super().fit(train_rows)

    assert isinstance(data.rules_baseline, SpecRulesBaseline)
    data = replace(data, rules_baseline=Spy(data.rules_baseline.tables))
    result = train(data, Settings(), TrainOptions(register=False, num_boost_round=30))
    frame = data.frame.reset_index(drop=True)
    key = ["lead_id", "as_of"]
    assert len(seen) == 1
    pd.testing.assert_frame_equal(seen[0].reset_index(drop=True),
                                  frame.iloc[result.split.train][key].reset_index(drop=True))
    test_keys = set(map(tuple, frame.iloc[result.split.test][key].to_numpy()))
    assert not test_keys & set(map(tuple, seen[0][key].to_numpy()))
    cold = result.model.cold_start
    assert cold["n"] > 0 and cold["preferred"] in {"model", "rules"}
    assert cold["rules"] == "the spec's starter rules, fitted on the training window"
    assert result.model.cold_start_rules.startswith("#") and "acme" in result.model.cold_start_rules
