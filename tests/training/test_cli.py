"""``leadscore train`` end to end through the CLI (typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli import app

from .conftest import MLFLOW_WARNINGS

pytestmark = MLFLOW_WARNINGS

# Wide enough that rich does not wrap error messages inside its box.
runner = CliRunner(env={"COLUMNS": "300"})


def _summary(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_needs_exactly_one_source(tmp_path):
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2
    assert "exactly one of --data DIR or --dataset SPEC" in result.output


def test_train_rejects_a_bad_scheduler(tmp_path):
    result = runner.invoke(app, ["train", "--data", str(tmp_path), "--scheduler", "yarn"])
    assert result.exit_code == 2 and "tcp://" in result.output


@pytest.fixture(scope="module")
def small_crm(tmp_path_factory) -> Path:
    """Generated CRM data small enough to train in seconds."""
    synthetic = pytest.importorskip("features.synthetic")
    out = tmp_path_factory.mktemp("crm")
    synthetic.generate_to_dir(synthetic.GeneratorConfig(n_leads=3000, seed=3), out)
    return out


@pytest.mark.slow
def test_train_data_promote_leaves_a_champion(small_crm, isolated_env):
    result = runner.invoke(app, ["train", "--data", str(small_crm), "--promote",
                                 "--num-boost-round", "60"])
    assert result.exit_code == 0, result.output
    summary = _summary(result)
    assert summary["model_version"] == "1"
    assert summary["promotion"]["promoted"] is True
    for key in ("roc_auc", "ece", "oracle_roc_auc", "rules_roc_auc"):
        assert 0 <= summary["metrics"][key] <= 1, key

    import mlflow
    from leadscore.settings import Settings
    from training.pipeline import training_data_from_dir
    from training.tracking import configure, resolve_alias

    settings = Settings()
    assert resolve_alias(settings)[:2] == ("lead-scoring", "1")
    configure(settings)
    frame = training_data_from_dir(small_crm).frame.head(20)
    out = mlflow.pyfunc.load_model("models:/lead-scoring@champion").predict(
        frame.drop(columns=["lead_id", "as_of", "label"]))
    assert out["probability"].between(0, 1).all() and "base_value" in out
    run = configure(settings).get_run(summary["run_id"])
    assert run.data.tags["feature_set_version"]
    assert run.data.params["horizon"] == "90d"
    assert "cold_start_model_auc" in run.data.metrics or run.data.tags["cold_start_preferred"]


@pytest.mark.slow
@pytest.mark.xeducation
def test_xeducation_flags_tags_even_when_the_spec_calls_it_categorical(xeducation_csv, tmp_path):
    from features.spec import example_spec_path

    text = example_spec_path("x-education").read_text()
    # The variant: Tags moved from the leaky list to the categorical features.
    text = text.replace("    - {column: Tags, reason: sales rep's status note written after contact}\n", "")
    text = text.replace("  categorical:\n", "  categorical:\n    - Tags\n", 1)
    spec = tmp_path / "x-education-tags.yaml"
    spec.write_text(text)
    result = runner.invoke(app, ["train", "--dataset", str(spec), "--dataset-file",
                                 str(xeducation_csv), "--num-boost-round", "200"])
    assert result.exit_code == 0, result.output
    summary = _summary(result)
    # Columns go by their spec-safe names; Tags is no longer declared leaky, so only its
    # single-feature AUC can have flagged it.
    assert "tags" in summary["leakage_excluded"]
    assert summary["metrics"]["roc_auc"] > 0.85
