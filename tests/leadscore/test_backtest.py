"""Backtests over committed batch runs, on generated data (the issue's Done-when).

One model is trained on the CRM as it stood at the first run's as_of (later activity
and outcomes erased, so nothing it scores is in-sample). Two rescores, 240 and 150 days
before the data's end, are committed; the backtest follows each with the outcomes of the
90 days after it. About 60 s on this machine (generation, one training, two rescores
on a thread cluster): the one test that needs a whole run history.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.synthetic import DEFAULT_END, GeneratorConfig, generate_to_dir
from serving import batch
from serving.batch import ModelSource
from tests.features.test_point_in_time import cut_at
from tests.serving.test_batch import MemoryLoader, _candidate, _settings
from tests.training.conftest import MLFLOW_WARNINGS

pytestmark = [*MLFLOW_WARNINGS, pytest.mark.integration]

FIRST = DEFAULT_END - pd.Timedelta(days=240)
SECOND = DEFAULT_END - pd.Timedelta(days=150)


@pytest.fixture
def thread_client():
    with batch.dask_client("local", workers=2, processes=False) as client:
        yield client


@pytest.mark.usefixtures("isolated_env")
def test_two_earlier_runs_rank_d_to_a_and_the_estimate_is_inside_the_auc_interval(
        tmp_path, thread_client):
    from leadscore.backtest import backtest_runs
    from leadscore.cli import app
    from leadscore.report import load_report_inputs
    from leadscore.settings import Settings
    from training.pipeline import TrainOptions, train, training_data_from_dir

    generate_to_dir(GeneratorConfig(n_leads=6000, seed=5, truth_sample=0), tmp_path / "crm")
    leads = pd.read_parquet(tmp_path / "crm" / "leads.parquet")
    acts = pd.read_parquet(tmp_path / "crm" / "activities.parquet")
    past = tmp_path / "at-first-run"
    past.mkdir()
    old_leads, old_acts = cut_at(leads[leads["created_at"] < FIRST], acts, FIRST)
    old_leads.to_parquet(past / "leads.parquet")
    old_acts[old_acts["lead_id"].isin(old_leads["lead_id"])].to_parquet(
        past / "activities.parquet")
    # One window (the training this test was written against): the backtest, not the
    # training mode, is under test, and its strict D < C < B < A needs grades far apart.
    # Cross-fitted (the default for this small base since issue 16), seed 5's model
    # ranks the test window better (0.733 against 0.703) but puts B at 0.107 and C at
    # 0.121 in the first run, inside both grades' intervals; over seeds 5-7 the realised
    # AUCs of the six runs averaged 0.719 cross-fitted against 0.714 on one window.
    trained = train(training_data_from_dir(past), Settings(),
                    TrainOptions(register=False, num_boost_round=80, crossfit="never"))
    source = ModelSource(_candidate(), _settings(), MemoryLoader(trained.model))
    out = tmp_path / "out"
    for stamp in (FIRST, SECOND):
        batch.rescore(tmp_path / "crm", out, settings=_settings(), source=source,
                      client=thread_client, n_partitions=2, as_of=stamp)
    # A third run at the data's end: its horizon has not passed.
    batch.rescore(tmp_path / "crm", out, settings=_settings(), source=source,
                  client=thread_client, n_partitions=2)
    # The runs themselves are pruned to two; the history keeps all three, health too.
    assert len(list((out / "runs").iterdir())) == 2

    outcomes = load_report_inputs(tmp_path / "crm").leads
    results = backtest_runs(out, outcomes, as_of=DEFAULT_END, min_labelled=200)
    assert [r.status for r in results] == ["ok", "ok", "not_due"], [r.reason for r in results]
    for r in results[:2]:
        rates = r.grades.set_index("grade")["observed_rate"]
        assert rates["D"] < rates["C"] < rates["B"] < rates["A"], (r.run_id, rates.to_dict())
        assert r.n_labelled >= 200 and r.estimate is not None
        m = r.realised
        # The estimate made at the time, on a run nobody shifted, is inside the
        # realised AUC's 95% DeLong interval.
        assert m["roc_auc_low"] <= r.estimate["expected_roc_auc"] <= m["roc_auc_high"], (
            r.run_id, m, r.estimate)
        assert m["roc_auc_high"] - m["roc_auc_low"] < 0.2  # an interval that can miss
        g = r.grades.set_index("grade")
        assert ((g["ci_low"] <= g["observed_rate"]) & (g["observed_rate"] <= g["ci_high"])).all()
        assert 0 <= m["ece"] < 0.1 and 0 < m["brier"] < 0.25 and m["top_decile_lift"] > 1
    # Too few labelled leads: refused, saying so.
    strict = backtest_runs(out, outcomes, as_of=DEFAULT_END, min_labelled=10**6)
    assert strict[0].status == "refused" and "fewer than the minimum 1000000" in strict[0].reason

    # Through the CLI: the table, then the figures logged to MLflow on the run of the
    # version that scored the runs ("1", as the source's candidate says): first while it
    # is not registered (said, not failed), then registered.
    runner = CliRunner(env={"COLUMNS": "300"})
    shown = runner.invoke(app, ["backtest", "--scores", str(out), "--data",
                                str(tmp_path / "crm")])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "realised vs estimated at the time (CBPE)" in text and "not due" in text
    assert "not logged to MLflow" in text and "version 1 is not in the registry" in text
    from tests.servers import register_model
    from training import tracking

    assert register_model(trained.model, tmp_path, experiment="bt", promote=False) == "1"
    logged = runner.invoke(app, ["backtest", "--scores", str(out), "--data",
                                 str(tmp_path / "crm")])
    assert logged.exit_code == 0 and "not logged" not in logged.output, logged.output
    client = tracking.configure(Settings())
    run_id = client.get_model_version("lead-scoring", "1").run_id
    history = client.get_metric_history(run_id, "backtest.roc_auc")
    assert sorted((m.step, round(m.value, 9)) for m in history) == sorted(
        (int(r.as_of.timestamp() // 86_400), round(r.realised["roc_auc"], 9))
        for r in results[:2])
    tag = json.loads(client.get_model_version("lead-scoring", "1").tags[
        f"backtest.{FIRST.date()}"])
    assert tag["n"] == results[0].n_labelled and "expected_roc_auc" in tag

    # The report over the rescore's scores shows the runs' backtests and the estimate.
    from leadscore.report import write_report

    report = write_report(tmp_path / "crm", tmp_path / "report.html",
                          scores_path=out / "scores")
    assert [b.status for b in report.backtests] == ["ok", "ok", "not_due"]
    page = (tmp_path / "report.html").read_text()
    assert "Backtests of earlier runs" in page and "AUC est." in page
    assert "Expected performance of this run" in page
    as_json = runner.invoke(app, ["backtest", "--scores", str(out), "--data",
                                  str(tmp_path / "crm"), "--json", "--no-log"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert [r["status"] for r in rows] == ["ok", "ok", "not_due"]
    assert rows[0]["realised"]["roc_auc"] == pytest.approx(results[0].realised["roc_auc"])
    assert np.isclose(rows[1]["estimate"]["expected_roc_auc"],
                      results[1].estimate["expected_roc_auc"])
