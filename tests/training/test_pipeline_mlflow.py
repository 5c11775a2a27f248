"""One MLflow store for the module: train a champion, then a worse challenger.

Training is the expensive part, so the two runs happen once in module fixtures and the
tests read what they left in the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlflow
from training import tracking
from training.pipeline import TrainingData, TrainOptions, train
from training.promote import promote

from .conftest import FEATURES, MLFLOW_WARNINGS, make_frame, schema_for_tests

pytestmark = [*MLFLOW_WARNINGS, pytest.mark.slow]

HORIZON = pd.Timedelta(days=28)
FIT_ONLY = ["industry", "company_size", "noise"]


@pytest.fixture(scope="module")
def frame_and_truth():
    frame, p_true = make_frame(6000, seed=11)
    truth = frame[["lead_id", "as_of"]].assign(p_convert=p_true.to_numpy())
    return frame, truth


@pytest.fixture(scope="module")
def champion(module_settings, frame_and_truth):
    frame, truth = frame_and_truth
    data = TrainingData(frame, schema_for_tests(), "as_of", HORIZON, truth=truth,
                        info={"kind": "test"})
    return train(data, module_settings, TrainOptions(num_boost_round=80, promote=True,
                                                     run_name="champion"))


@pytest.fixture(scope="module")
def challenger(module_settings, frame_and_truth, champion):
    frame, _ = frame_and_truth
    data = TrainingData(frame, schema_for_tests(), "as_of", HORIZON, info={"kind": "test"})
    behaviour = tuple(f for f in FEATURES if f not in FIT_ONLY)
    return train(data, module_settings, TrainOptions(num_boost_round=80, promote=True,
                                                     run_name="fit-only", exclude=behaviour))


def test_first_model_becomes_champion(module_settings, champion):
    assert champion.model_version == "1"
    assert champion.promotion.promoted and "first model" in champion.promotion.reason
    assert tracking.resolve_alias(module_settings) == ("lead-scoring", "1",
                                                      "models:/lead-scoring/1")


def test_run_records_metrics_params_tags_and_artifacts(module_settings, champion):
    client = tracking.configure(module_settings)
    run = client.get_run(champion.run_id)
    for key in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "recall_at_10pct",
                "decile_01_lift", "decile_10_conversion_rate", "oracle_roc_auc", "oracle_gap",
                "segment_auc__source__web", "segment_auc__industry__saas"):
        assert key in run.data.metrics, key
    assert run.data.metrics["roc_auc"] > 0.65
    assert abs(run.data.metrics["oracle_gap"]) < 0.05
    tags = run.data.tags
    assert tags["feature_set_version"] == "test-1"
    assert len(tags["dataset_fingerprint"]) == 16
    assert tags["git_commit"]
    assert tags["window.test_start"] and tags["window.purge_gap"] == str(HORIZON)
    assert tags["promotion.decision"] == "promoted"
    assert run.data.params["split"] == "time" and run.data.params["lgb.num_leaves"] == "31"
    artifacts = {a.path for a in client.list_artifacts(champion.run_id, "plots")}
    assert artifacts == {f"plots/{n}.png" for n in ("calibration_curve", "cumulative_gains",
                         "lift_by_decile", "shap_summary", "feature_importance")}
    evaluation = {a.path for a in client.list_artifacts(champion.run_id, "evaluation")}
    assert "evaluation/test_frame.parquet" in evaluation
    assert {"evaluation/deciles.csv", "evaluation/segment_auc.csv"} <= evaluation
    assert client.list_artifacts(champion.run_id, "leakage")[0].path == "leakage/audit.csv"


def test_artifacts_live_beside_the_store_not_in_the_cwd(module_settings, champion):
    client = tracking.configure(module_settings)
    run = client.get_run(champion.run_id)
    store_dir = Path(module_settings.resolved_tracking_uri.removeprefix("sqlite:///")).parent
    assert run.info.artifact_uri.startswith((store_dir / "mlartifacts").as_uri())
    assert not Path("mlruns").exists()


def test_logged_model_has_signature_requirements_and_booster(module_settings, champion):
    tracking.configure(module_settings)
    info = mlflow.models.get_model_info("models:/lead-scoring/1")
    assert info.signature is not None
    assert {s.name for s in info.signature.inputs} == set(FEATURES)
    local = Path(mlflow.artifacts.download_artifacts("models:/lead-scoring/1"))
    requirements = (local / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "scikit-learn==" in requirements
    assert (local / "artifacts" / "booster.txt").read_text().startswith("tree")


def test_champion_loads_and_explains_in_a_fresh_process(module_settings, champion, tmp_path):
    frame = make_frame(40, seed=99)[0].drop(columns=["lead_id", "as_of", "label"])
    frame.to_parquet(tmp_path / "rows.parquet")
    script = textwrap.dedent(f"""
        import mlflow, pandas as pd
        frame = pd.read_parquet({str(tmp_path / "rows.parquet")!r})
        model = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
        model.predict(frame).to_parquet({str(tmp_path / "out.parquet")!r})
    """)
    env = {**os.environ, "MLFLOW_TRACKING_URI": module_settings.resolved_tracking_uri,
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path,
                   timeout=120, capture_output=True)
    out = pd.read_parquet(tmp_path / "out.parquet")
    model = champion.model
    assert list(out.columns) == ["probability", *(f"contrib__{n}" for n in model.feature_names),
                                 "base_value"]
    contrib = out.filter(like="contrib__").to_numpy()
    np.testing.assert_allclose(contrib.sum(1) + out["base_value"], model.raw_margin(frame),
                               atol=1e-9)
    np.testing.assert_allclose(out["probability"], model.predict_proba(frame), atol=1e-12)


@pytest.mark.filterwarnings("ignore:LightGBM binary classifier with TreeExplainer:UserWarning")
def test_pyfunc_contributions_agree_with_shap(module_settings, champion):
    shap = pytest.importorskip("shap")
    tracking.configure(module_settings)
    loaded = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
    lead_model = loaded.unwrap_python_model().model
    frame = make_frame(100, seed=3)[0][FEATURES]
    out = loaded.predict(frame)
    values = shap.TreeExplainer(lead_model.booster_).shap_values(lead_model.prepare(frame))
    values = values[1] if isinstance(values, list) else values
    np.testing.assert_allclose(out.filter(like="contrib__").to_numpy(), values, atol=1e-6)


def test_worse_challenger_is_refused_with_a_recorded_reason(module_settings, champion,
                                                            challenger):
    decision = challenger.promotion
    assert challenger.model_version == "2"
    assert not decision.promoted
    assert decision.reason.startswith("refused: ROC AUC")
    assert decision.challenger_auc < decision.champion_auc - 0.005
    client = tracking.configure(module_settings)
    assert tracking.resolve_alias(module_settings)[1] == "1"
    run = client.get_run(challenger.run_id)
    assert run.data.tags["promotion.decision"] == "refused"
    assert run.data.tags["promotion.reason"] == decision.reason
    assert "promotion.champion_auc" in run.data.metrics
    version = client.get_model_version("lead-scoring", "2")
    assert version.tags["promotion.decision"] == "refused"
    assert decision.reason in version.description


def test_champion_is_rescored_on_the_challengers_window(module_settings, champion, challenger):
    # The gate's champion AUC is the champion on the challenger's test rows; the two
    # runs share the frame, so it equals the champion's own test AUC.
    assert challenger.promotion.champion_auc == pytest.approx(champion.metrics["roc_auc"],
                                                              abs=1e-9)


def test_promote_force_and_cli(module_settings, champion, challenger, monkeypatch):
    from typer.testing import CliRunner

    from leadscore.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", module_settings.resolved_tracking_uri)
    monkeypatch.setenv("LEADSCORE_HOME", str(module_settings.home))
    runner = CliRunner()
    refused = runner.invoke(app, ["promote", "--version", "2"])
    assert refused.exit_code == 1, refused.output
    assert json.loads(refused.stdout.strip().splitlines()[-1])["promoted"] is False
    forced = runner.invoke(app, ["promote", "--version", "2", "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout.strip().splitlines()[-1])["forced"] is True
    assert tracking.resolve_alias(module_settings)[1] == "2"
    # Put the better model back: it passes the gate against the weaker one.
    back = promote(module_settings, "1")
    assert back.promoted and back.reason.startswith("promoted: ROC AUC")
