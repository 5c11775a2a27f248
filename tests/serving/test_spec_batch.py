"""``rescore --dataset``: a spec's whole base, the batch job's output, equal to /score."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from tests.serving.test_spec_contract import _payloads
from tests.training.conftest import MLFLOW_WARNINGS
from tests.training.test_from_spec import write_crm

runner = CliRunner(env={"COLUMNS": "300"})
pytestmark = [*MLFLOW_WARNINGS]


def test_rescore_a_spec_equals_score_and_refuses_another_specs_model(tmp_path, synthetic_dir):
    import mlflow
    from rules_fallback import load_rules
    from serving.batch import OUTPUT_SCHEMA
    from serving.scorer import Engine, ModelBundle
    from serving.spec_contract import SpecContract
    from serving.spec_scoring import score_spec_leads

    spec = write_crm(tmp_path, n=800)
    trained = runner.invoke(app, ["train", "--dataset", str(spec), "--promote",
                                  "--num-boost-round", "60"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "out"
    as_of = "2025-09-01T00:00:00Z"
    result = runner.invoke(app, ["rescore", "--dataset", str(spec), "--out", str(out),
                                 "--as-of", as_of, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    for part in sorted((out / "scores").glob("part-*.parquet")):
        assert pq.read_schema(part).equals(OUTPUT_SCHEMA), part
    frame = pq.read_table(out / "scores").to_pandas()
    assert len(frame) == summary["n_scored"] == frame["lead_id"].nunique() > 100
    # Leads with no activity yet go to the rules when training found them better there
    # (or could not compare): the starter rules fitted on the training window, shipped
    # with the model. Every other lead is the model's.
    model_info = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
    cold_start = model_info.unwrap_python_model().model.cold_start
    by = frame.groupby("scored_by")["fallback_reason"].unique().to_dict()
    if cold_start["preferred"] == "rules":
        assert set(by) == {"model", "rules"} and list(by["rules"]) == ["cold_start"], by
    else:
        assert set(by) == {"model"}, by
    assert set(frame.loc[frame["scored_by"] == "model", "model_version"]) == {"1"}
    # Drift of the model-scored leads against the training window, in the run.
    health = json.loads((out / "scores" / "_health.json").read_text())
    assert summary["health"]["n_features"] == health["n_features"] > 10
    assert {f["feature"] for f in health["features"]} >= {"lead_source", "employees"}
    assert health["score_psi"] >= 0 and health["thresholds"] == {"warn": 0.1, "alert": 0.25}
    labels = {f["feature"]: f["label"] for f in health["features"]}
    assert labels["lead_source"] == "Lead source"  # the spec's own words
    from training.evaluate import expected_performance

    model_p = frame.loc[frame["scored_by"] == "model", "probability"].to_numpy()
    assert health["estimate"]["n"] == len(model_p) > 0
    assert health["estimate"]["expected_roc_auc"] == pytest.approx(
        expected_performance(model_p)["expected_roc_auc"], rel=1e-12)
    assert summary["health"]["estimate"]["expected_conversion_rate"] == pytest.approx(
        model_p.mean(), rel=1e-12)
    leads = pd.read_csv(spec.parent / "leads.csv")
    created = pd.to_datetime(leads.set_index("Lead Number")["Created On"]).dt.tz_localize("UTC")
    assert (created.loc[frame["lead_id"]] < pd.Timestamp(as_of)).all()  # open leads only
    assert not (out / ".staging").exists()
    # The same run again (same spec, data, as_of and model): the committed run is kept.
    first = (out / "scores").resolve()
    stamp = (first / "part-00000.parquet").stat().st_mtime_ns
    again = runner.invoke(app, ["rescore", "--dataset", str(spec), "--out", str(out),
                                "--as-of", as_of, "--json"])
    assert again.exit_code == 0, again.output
    assert (out / "scores").resolve() == first
    assert (first / "part-00000.parquet").stat().st_mtime_ns == stamp

    # A backtest of this spec's run, followed with the spec's dated outcomes (the run is
    # months before the data's end). Below the minimum of labelled leads: refused, saying
    # so; with a minimum this small CRM reaches: its figures, next to the estimate.
    refused = runner.invoke(app, ["backtest", "--scores", str(out), "--dataset", str(spec),
                                  "--json", "--no-log"],
                            env={"LEADSCORE_BACKTEST_MIN_LABELLED": "100000"})
    assert refused.exit_code == 0, refused.output
    (row,) = json.loads(refused.stdout.strip().splitlines()[-1])
    assert row["status"] == "refused" and "fewer than the minimum 100000" in row["reason"]
    done = runner.invoke(app, ["backtest", "--scores", str(out), "--dataset", str(spec),
                               "--json", "--no-log"],
                         env={"LEADSCORE_BACKTEST_MIN_LABELLED": "20"})
    (row,) = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["status"] == "ok" and row["n_labelled"] >= 20, row
    assert 0.5 < row["realised"]["roc_auc"] <= 1 and row["estimate"]["expected_roc_auc"] > 0.5
    assert [g["grade"] for g in row["grades"]] == ["A", "B", "C", "D"]

    # The same leads through the API's core: equal to 1e-9, same grades and reasons.
    model = mlflow.pyfunc.load_model("models:/lead-scoring@champion").unwrap_python_model().model
    contract = SpecContract.from_model(model)
    engine = Engine(ModelBundle(model, "lead-scoring", "1", "champion", "u", datetime.now(UTC)),
                    load_rules(None))
    # Both kinds of answer are compared: the model's and the cold-start rules'.
    sample = pd.concat([frame.loc[frame["scored_by"] == "model"].sample(25, random_state=0),
                        frame.loc[frame["scored_by"] == "rules"].head(5)])
    payloads = _payloads(spec.parent, list(sample["lead_id"]))
    leads_in = [contract.lead_model.model_validate(payloads[i]) for i in sample["lead_id"]]
    api = score_spec_leads(leads_in, pd.Timestamp(as_of).to_pydatetime(), engine, contract)
    for (_, row), answer in zip(sample.iterrows(), api, strict=True):
        assert abs(row["probability"] - answer["probability"]) < 1e-9
        reason = None if pd.isna(row["fallback_reason"]) else row["fallback_reason"]
        assert (row["grade"], row["route"], row["score"], row["scored_by"],
                reason, row["rules_version"]) == (
            answer["grade"], answer["route"], answer["score"], answer["scored_by"],
            answer["fallback_reason"], answer["rules_version"])
        assert [r["sentence"] for r in row["reasons"]] == [r.sentence for r in answer["reasons"]]

    # In batches: several part files, the same rows as one batch; both runs in the score
    # history; a third run prunes the first (the current run and the one before are kept).
    from serving.score_history import read_history
    from serving.spec_batch import rescore_spec

    later = "2025-10-01T00:00:00Z"
    batched = runner.invoke(app, ["rescore", "--dataset", str(spec), "--out", str(out),
                                  "--as-of", later, "--batch-size", "97", "--json"])
    assert batched.exit_code == 0, batched.output
    parts = sorted((out / "scores").glob("part-*.parquet"))
    in_parts = pq.read_table(out / "scores").to_pandas()
    assert len(parts) == -(-len(in_parts) // 97) > 2
    whole = rescore_spec(spec, tmp_path / "whole", model, model_name="lead-scoring",
                         model_version="1", as_of=pd.Timestamp(later))
    one = pq.read_table(whole.run_dir).to_pandas()
    columns = [c for c in one.columns if c != "scored_at"]
    pd.testing.assert_frame_equal(
        in_parts[columns].sort_values("lead_id").reset_index(drop=True),
        one[columns].sort_values("lead_id").reset_index(drop=True))
    history = read_history(out / "history")
    assert history["run_id"].nunique() == 2 and len(history) == len(frame) + len(in_parts)
    third = runner.invoke(app, ["rescore", "--dataset", str(spec), "--out", str(out),
                                "--as-of", "2025-11-01T00:00:00Z", "--json"])
    assert third.exit_code == 0, third.output
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 2 and first.name not in runs
    assert read_history(out / "history")["run_id"].nunique() == 3

    # A model of another spec (the built-in one) is refused, and nothing is left behind.
    builtin = runner.invoke(app, ["train", "--data", str(synthetic_dir), "--num-boost-round",
                                  "20"])
    assert builtin.exit_code == 0, builtin.output
    elsewhere = tmp_path / "elsewhere"
    refused = runner.invoke(app, ["rescore", "--dataset", str(spec), "--out", str(elsewhere),
                                  "--model-uri", "models:/lead-scoring/2"])
    assert refused.exit_code != 0
    message = " ".join(str(refused.exception or "").split()) + " ".join(refused.output.split())
    assert "2026.11.1" in message and "spec:acme:" in message, message
    assert not elsewhere.exists()


def test_rescore_needs_exactly_one_input(tmp_path):
    result = runner.invoke(app, ["rescore", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "exactly one of --data DIR or --dataset SPEC" in " ".join(
        result.output.split())
    result = runner.invoke(app, ["rescore", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--batch-size", "10"])
    assert result.exit_code == 2 and "only applies with --dataset SPEC" in " ".join(
        result.output.split())


@pytest.mark.xeducation
def test_rescore_x_education_one_row_per_lead(tmp_path, xeducation_csv):
    from features.spec import example_spec_path

    spec = example_spec_path("x-education")
    trained = runner.invoke(app, ["train", "--dataset", str(spec), "--dataset-file",
                                  str(xeducation_csv), "--promote"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "out"
    result = runner.invoke(app, ["rescore", "--dataset", str(spec), "--dataset-file",
                                 str(xeducation_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pq.read_table(out / "scores" / "part-00000.parquet").to_pandas()
    assert len(frame) == 9240 == frame["lead_id"].nunique()  # no time: every lead is open
    assert set(frame["scored_by"]) == {"model"}
