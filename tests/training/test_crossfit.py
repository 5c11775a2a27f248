"""Cross-fitting on small data: folds that give each row one part, a calibrator that never
sees a test row, and the round count chosen by CV then refitted on train + validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.crossfit import crossfit_folds
from training.pipeline import FeatureSchema, TrainingData, TrainOptions, fit_model
from training.split import random_split, time_split

from .conftest import CATEGORICAL, FEATURES, make_frame


def _data(frame: pd.DataFrame, time_column: str | None) -> TrainingData:
    schema = FeatureSchema(names=tuple(FEATURES), categorical=tuple(CATEGORICAL), version="t")
    return TrainingData(frame=frame, schema=schema, time_column=time_column,
                        purge_gap=pd.Timedelta(days=28))


def _parts(split) -> np.ndarray:
    """How many parts (train, valid, test) each row is in."""
    count = np.zeros(split.n_rows, dtype=int)
    for part in (split.train, split.valid, split.test):
        np.add.at(count, part, 1)
    return count


def test_every_split_gives_each_row_exactly_one_part():
    frame, _ = make_frame(3000, seed=1)
    y = frame["label"].to_numpy()
    rs = random_split(y, random_state=3)
    assert (_parts(rs) == 1).all()  # no purge without time: every row in exactly one part
    ts = time_split(frame["as_of"], y, horizon=pd.Timedelta(days=28))
    # With time, a row is in one part or purged (its label window reaches the next part).
    assert _parts(ts).max() == 1 and (_parts(ts) == 0).sum() == ts.purged > 0
    t = pd.to_datetime(frame["as_of"], utc=True)
    assert t.iloc[ts.train].max() + pd.Timedelta(days=28) < t.iloc[ts.valid].min()
    assert t.iloc[ts.valid].max() + pd.Timedelta(days=28) < t.iloc[ts.test].min()


def test_every_fold_gives_each_row_exactly_one_part():
    frame, _ = make_frame(3000, seed=2)
    y = frame["label"].to_numpy()
    strat = crossfit_folds(y, n_splits=5)
    held = np.concatenate([f.held for f in strat.folds])
    assert len(strat.folds) == 5 and np.array_equal(np.sort(held), np.arange(len(y)))
    for f in strat.folds:
        # fit and held split the rows between them, with nothing left over.
        assert np.intersect1d(f.fit, f.held).size == 0 and len(f.fit) + len(f.held) == len(y)
    horizon = pd.Timedelta(days=28)
    fwd = crossfit_folds(y, time=frame["as_of"], horizon=horizon, n_splits=4)
    t = pd.to_datetime(frame["as_of"], utc=True).to_numpy()
    assert fwd.kind == "forward" and len(fwd.folds) >= 3
    held = np.concatenate([f.held for f in fwd.folds])
    assert len(np.unique(held)) == len(held)  # each row held out at most once
    for f in fwd.folds:
        assert np.intersect1d(f.fit, f.held).size == 0
        # Forward chaining with the split's purge: a fitted row's label window ends
        # strictly before the held block starts.
        assert (t[f.fit] + horizon).max() < t[f.held].min()


@pytest.mark.parametrize(("time_column", "crossfit", "kind"), [
    (None, "auto", "stratified"), ("as_of", "auto", "grouped"), ("as_of", "forward", "forward")])
def test_cross_fitted_calibration_never_sees_test_rows(time_column, crossfit, kind):
    frame, _ = make_frame(3000, seed=4)
    data = _data(frame, time_column)
    y = frame["label"].to_numpy()
    split = (time_split(frame["as_of"], y, horizon=data.purge_gap) if time_column
             else random_split(y, random_state=0))
    options = TrainOptions(num_boost_round=150, early_stopping_rounds=30, crossfit=crossfit)
    model, rows = fit_model(data, frame, split, FEATURES, CATEGORICAL, options)
    assert model.crossfit_["cv_kind"] == kind
    assert np.intersect1d(rows, split.test).size == 0
    assert set(rows) <= set(split.train) | set(split.valid)

    # Poison every test label (and every test feature value): nothing fitted may change.
    poisoned = frame.copy()
    poisoned.loc[split.test, "label"] = 1 - poisoned.loc[split.test, "label"]
    poisoned.loc[split.test, "engagement"] = 1e6
    again, rows_again = fit_model(_data(poisoned, time_column), poisoned, split, FEATURES,
                                  CATEGORICAL, options)
    assert np.array_equal(rows, rows_again)
    assert again.crossfit_["cv_rounds"] == model.crossfit_["cv_rounds"]
    assert again.booster_.model_to_string() == model.booster_.model_to_string()
    assert vars(again.calibrator_).keys() == vars(model.calibrator_).keys()
    for key, value in vars(model.calibrator_).items():
        np.testing.assert_array_equal(np.asarray(getattr(again.calibrator_, key)),
                                      np.asarray(value))
    assert again.grading == model.grading


def test_crossfit_refits_on_train_and_validation_and_never_is_the_old_path():
    frame, _ = make_frame(3000, seed=5)
    data = _data(frame, None)
    y = frame["label"].to_numpy()
    split = random_split(y, random_state=1)
    options = TrainOptions(num_boost_round=150, early_stopping_rounds=30)
    crossfit, _ = fit_model(data, frame, split, FEATURES, CATEGORICAL, options)
    # The final booster has exactly the CV-chosen rounds and learned from train + valid
    # (refit='bag' instead averages the fold boosters: tests/training/test_bagging.py).
    assert crossfit.crossfit_["cv_refit"] == "single"
    assert crossfit.booster_.current_iteration() == crossfit.crossfit_["cv_rounds"]
    pool = len(split.train) + len(split.valid)
    assert crossfit.crossfit_["cv_held_rows"].count(",") == 4
    assert sum(int(n) for n in crossfit.crossfit_["cv_held_rows"].split(",")) == pool
    old, rows = fit_model(data, frame, split, FEATURES, CATEGORICAL,
                          TrainOptions(num_boost_round=150, early_stopping_rounds=30,
                                       crossfit="never"))
    assert not hasattr(old, "crossfit_") and np.array_equal(rows, split.valid)
    # auto cross-fits a small time split too, on folds that keep a lead's snapshots
    # together, and refits on train + validation; never keeps its one window.
    timed = _data(frame, "as_of")
    ts = time_split(frame["as_of"], y, horizon=timed.purge_gap)
    auto, rows = fit_model(timed, frame, ts, FEATURES, CATEGORICAL,
                           TrainOptions(num_boost_round=150, early_stopping_rounds=30))
    assert auto.crossfit_["cv_kind"] == "grouped"
    assert set(rows) <= set(ts.train) | set(ts.valid) and not set(rows) & set(ts.test)
    one, rows = fit_model(timed, frame, ts, FEATURES, CATEGORICAL,
                          TrainOptions(num_boost_round=150, early_stopping_rounds=30,
                                       crossfit="never"))
    assert not hasattr(one, "crossfit_") and np.array_equal(rows, ts.valid)
    with pytest.raises(ValueError, match="'crossfit' parameter of TrainOptions"):
        TrainOptions(crossfit="sometimes")


def test_grouped_folds_keep_every_snapshot_of_a_lead_in_one_fold():
    frame, _ = make_frame(3000, seed=7)
    # Each lead three times, as weekly snapshots of one CRM would give it.
    frame = pd.concat([frame] * 3, ignore_index=True)
    y = frame["label"].to_numpy()
    folds = crossfit_folds(y, groups=frame["lead_id"].to_numpy(), n_splits=5)
    assert folds.kind == "grouped" and folds.usable and len(folds.folds) == 5
    lead = frame["lead_id"].to_numpy()
    assert np.array_equal(folds.held_out, np.arange(len(y)))
    for f in folds.folds:
        assert not set(lead[f.fit]) & set(lead[f.held])
        assert len(f.fit) + len(f.held) == len(y)
    with pytest.raises(ValueError, match="time .* or groups"):
        crossfit_folds(y, groups=lead, time=frame["as_of"])


def test_forward_folds_that_all_fit_on_one_window_are_not_a_cross_validation():
    """A time split's pool is its training window, a purge gap, then its validation
    window: with a horizon longer than the validation window, the purge keeps every
    validation row out of every fit, so each usable fold fits on the training window
    alone. That is one window repeated; training must not cross-fit on it."""
    frame, _ = make_frame(3000, weeks=60, seed=6)
    y = frame["label"].to_numpy()
    horizon = pd.Timedelta(days=90)
    split = time_split(frame["as_of"], y, horizon=horizon, valid_frac=0.35, test_frac=0.15)
    pool = np.sort(np.concatenate([split.train, split.valid]))
    folds = crossfit_folds(y[pool], time=frame["as_of"].iloc[pool], horizon=horizon)
    assert len(folds.folds) >= 2 and folds.distinct_fits == 1 and not folds.usable
    data = TrainingData(frame=frame, schema=_data(frame, "as_of").schema, time_column="as_of",
                        purge_gap=horizon)
    model, rows = fit_model(data, frame, split, FEATURES, CATEGORICAL,
                            TrainOptions(num_boost_round=60, early_stopping_rounds=20,
                                         crossfit="forward"))
    assert not hasattr(model, "crossfit_") and np.array_equal(rows, split.valid)
    assert "all fit on the same" in model.crossfit_skipped_
    assert "one window repeated" in model.crossfit_skipped_
    # Folds over the same pool that chain through time are usable.
    stratified = crossfit_folds(y[pool])
    assert stratified.usable and stratified.distinct_fits == len(stratified.folds)


def test_training_a_small_snapshot_set_keeps_each_lead_in_one_fold(monkeypatch):
    import training.crossfit

    base, _ = make_frame(1200, weeks=20, seed=8)
    # Three weekly snapshots of every lead, with the same label: what a CRM's history
    # gives. A fold that fitted on one snapshot of a lead and held out another would
    # score the lead by recognising it.
    frame = pd.concat([base.assign(as_of=base["as_of"] + pd.Timedelta(weeks=w))
                       for w in range(3)], ignore_index=True)
    frame = frame.sort_values("as_of", kind="stable").reset_index(drop=True)
    data = _data(frame, "as_of")
    y = frame["label"].to_numpy()
    split = time_split(frame["as_of"], y, horizon=data.purge_gap)
    made = []
    real = training.crossfit.crossfit_folds
    monkeypatch.setattr(training.crossfit, "crossfit_folds",
                        lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    model, rows = fit_model(data, frame, split, FEATURES, CATEGORICAL,
                            TrainOptions(num_boost_round=100, early_stopping_rounds=20))
    (folds,) = made
    assert folds.kind == "grouped" and model.crossfit_["cv_kind"] == "grouped"
    pool = np.sort(np.concatenate([split.train, split.valid]))
    lead = frame["lead_id"].to_numpy()[pool]
    assert len(set(lead)) < len(pool)  # leads do repeat in the pool
    for f in folds.folds:
        assert not set(lead[f.fit]) & set(lead[f.held])
    assert model.crossfit_["cv_unheld_rows"] == 0
    assert np.array_equal(np.sort(rows), pool)
