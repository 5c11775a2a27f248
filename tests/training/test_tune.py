"""``--tune``: a bounded search scored by the very held-out figure the fit uses.

What is checked: the budget's parsing and its errors; that trial 0 is the defaults and
the choice is never worse than them on the objective; that the objective *is* the fit's
(the final cross-fit reproduces the best trial's CV AUC, the final one-window fit its
validation AUC); that the test window cannot move the choice; and that the MLflow run
shows each trial as a nested run with the chosen parameters on the parent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.model import DEFAULT_PARAMS
from training.pipeline import FeatureSchema, TrainingData, TrainOptions, fit_model, train
from training.split import random_split, time_split
from training.tune import SEARCH_SPACE, TuneBudget

from .conftest import CATEGORICAL, FEATURES, MLFLOW_WARNINGS, make_frame, schema_for_tests

FAST = {"num_boost_round": 120, "early_stopping_rounds": 25}


def _data(frame: pd.DataFrame, time_column: str | None) -> TrainingData:
    schema = FeatureSchema(names=tuple(FEATURES), categorical=tuple(CATEGORICAL), version="t")
    return TrainingData(frame=frame, schema=schema, time_column=time_column,
                        purge_gap=pd.Timedelta(days=28))


@pytest.mark.parametrize(("text", "seconds", "trials"), [
    ("120s", 120.0, None), ("5m", 300.0, None), ("1h", 3600.0, None), (" 90 S ", 90.0, None),
    ("50", None, 50), ("1", None, 1),
])
def test_a_budget_is_a_duration_or_a_number_of_trials(text, seconds, trials):
    budget = TuneBudget.parse(text)
    assert (budget.seconds, budget.trials) == (seconds, trials)


@pytest.mark.parametrize(("text", "message"), [
    ("soon", "expected a duration such as '120s'"),
    ("2.5", "not a whole number of trials"),
    ("0", "between 1 and 10000"),
    ("0s", "between 1 second and 24 hours"),
    ("-3s", "expected a duration"),
    ("2d", "expected a duration"),
])
def test_a_bad_budget_is_refused_naming_the_value(text, message):
    with pytest.raises(ValueError, match=message) as info:
        TuneBudget.parse(text)
    if "between" not in message:
        assert repr(text) in str(info.value)


def test_the_cli_refuses_a_bad_budget_naming_the_option(tmp_path):
    from leadscore.cli import app

    result = CliRunner(env={"COLUMNS": "300"}).invoke(
        app, ["train", "--data", str(tmp_path), "--tune", "a while"])
    assert result.exit_code == 2
    assert "--tune" in result.output and "'a while'" in result.output


def test_cross_fitted_search_starts_at_the_defaults_and_its_objective_is_the_fit(tmp_path):
    frame, _ = make_frame(2500, seed=21)
    y = frame["label"].to_numpy()
    split = random_split(y, random_state=0)
    options = TrainOptions(**FAST, tune=TuneBudget(trials=6), random_state=3)
    model, rows = fit_model(_data(frame, None), frame, split, FEATURES, CATEGORICAL, options)
    tuning = model.tuning_
    assert len(tuning.trials) == 6 and "stratified folds" in tuning.objective
    first = tuning.trials[0]
    assert first.defaults and first.params == {k: DEFAULT_PARAMS[k] for k in SEARCH_SPACE}
    assert tuning.default_value == first.value
    assert tuning.best_value == max(t.value for t in tuning.trials) >= tuning.default_value
    # Trials explore: not all alike, and every value inside the documented space.
    assert len({json.dumps(t.params, sort_keys=True) for t in tuning.trials}) == 6
    for t in tuning.trials:
        for name, (_, low, high) in SEARCH_SPACE.items():
            assert low <= t.params[name] <= high
    # The fit used the chosen parameters, and its own CV reproduces the best trial's
    # figure: the search scored exactly what the fit chooses rounds by.
    assert {k: model.params[k] for k in SEARCH_SPACE} == tuning.best_params
    assert model.crossfit_["cv_auc_mean"] == pytest.approx(tuning.best_value, abs=1e-12)
    assert model.crossfit_["cv_rounds"] == tuning.best_trial.rounds
    assert np.intersect1d(rows, split.test).size == 0

    # Nothing in the test window can move the search: poison it and search again.
    poisoned = frame.copy()
    poisoned.loc[split.test, "label"] = 1 - poisoned.loc[split.test, "label"]
    poisoned.loc[split.test, "engagement"] = 1e6
    again, _ = fit_model(_data(poisoned, None), poisoned, split, FEATURES, CATEGORICAL, options)
    assert [t.params for t in again.tuning_.trials] == [t.params for t in tuning.trials]
    assert [t.value for t in again.tuning_.trials] == [t.value for t in tuning.trials]
    assert again.booster_.model_to_string() == model.booster_.model_to_string()


def test_one_window_search_scores_the_validation_window_the_fit_early_stops_on():
    from training.evaluate import safe_auc

    frame, _ = make_frame(3000, seed=22)
    data = _data(frame, "as_of")
    y = frame["label"].to_numpy()
    split = time_split(frame["as_of"], y, horizon=data.purge_gap)
    # One window: what data above the cross-fit threshold gets ('never' asks for it here).
    options = TrainOptions(**FAST, tune=TuneBudget(trials=4), crossfit="never")
    model, rows = fit_model(data, frame, split, FEATURES, CATEGORICAL, options)
    assert not hasattr(model, "crossfit_") and np.array_equal(rows, split.valid)
    assert model.tuning_.objective == "ROC AUC on the validation window"
    valid = frame.iloc[split.valid]
    assert safe_auc(y[split.valid], model.raw_margin(valid[FEATURES])) == pytest.approx(
        model.tuning_.best_value, abs=1e-12)
    assert model.best_iteration_ == model.tuning_.best_trial.rounds


def _with_marks(marks):
    def apply(test):
        for mark in marks:
            test = mark(test)
        return test
    return apply


@_with_marks([pytest.mark.slow, *MLFLOW_WARNINGS])
def test_the_run_shows_each_trial_as_a_nested_run_and_the_choice_on_the_parent(
        module_settings, tmp_path):
    import mlflow

    frame, _truth = make_frame(2000, seed=23)
    data = TrainingData(frame, schema_for_tests(), None, None, info={"kind": "test"})
    result = train(data, module_settings, TrainOptions(**FAST, tune=TuneBudget(trials=3),
                                                       register=False, run_name="tuned"))
    client = mlflow.MlflowClient()
    parent = client.get_run(result.run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 3
    by_trial = {int(c.data.tags["leadscore.tune_trial"]): c for c in children}
    assert by_trial[0].data.tags["leadscore.tune_defaults"] == "true"
    for number, record in enumerate(result.model.tuning_.trials):
        child = by_trial[number]
        assert child.data.metrics["heldout_roc_auc"] == pytest.approx(record.value)
        assert float(child.data.params["num_leaves"]) == record.params["num_leaves"]
    assert parent.data.tags["tuned"] == "true"
    assert parent.data.params["tune_budget"] == "3 trials"
    best = result.model.tuning_.best_params
    for name, value in best.items():
        assert float(parent.data.params[f"tune.{name}"]) == pytest.approx(value)
        assert float(parent.data.params[f"lgb.{name}"]) == pytest.approx(value)
    assert parent.data.metrics["tune_best_heldout_auc"] >= parent.data.metrics[
        "tune_default_heldout_auc"]
    trials = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="tuning/trials.json",
        dst_path=str(tmp_path))).read_text())
    assert len(trials["trials"]) == 3 and trials["summary"]["best_params"] == best


def test_a_trial_ended_by_the_round_cap_is_marked_and_a_capped_best_is_warned(caplog):
    """At a low learning rate the cap, not early stopping, ends a trial: the user must
    know, since its score is a floor and a larger --num-boost-round may beat it."""
    import logging

    from training.tune import tune

    cap, patience = 300, 50

    def objective(params):
        # Lower learning rates score higher and need every round: the cap binds them.
        rate = params["learning_rate"]
        return 1.0 - rate, cap if rate < 0.05 else 120

    with caplog.at_level(logging.INFO, logger="leadscore.training"):
        result = tune(objective, TuneBudget(trials=12), defaults=DEFAULT_PARAMS,
                      objective_name="fake", round_cap=cap, patience=patience)
    for record in result.trials:
        assert record.capped == (record.params["learning_rate"] < 0.05), record
    assert result.best_trial.capped and result.summary()["best_capped"] is True
    assert result.summary()["capped_trials"] == sum(t.capped for t in result.trials) > 0
    capped_lines = [r.getMessage() for r in caplog.records
                    if r.name == "leadscore.training.tune" and "(the cap of 300)" in r.getMessage()]
    assert len(capped_lines) == result.summary()["capped_trials"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"best trial ({result.best_trial.number}," in w and "cap of 300" in w
               for w in warnings), warnings


def test_a_trial_that_early_stopping_ended_is_not_capped():
    from training.tune import tune

    result = tune(lambda params: (0.7, 249), TuneBudget(trials=3), defaults=DEFAULT_PARAMS,
                  objective_name="fake", round_cap=300, patience=50)
    # 249 + 50 rounds without gain fit under 300: early stopping ended every trial.
    assert not any(t.capped for t in result.trials)
    assert result.summary()["best_capped"] is False
