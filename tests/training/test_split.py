"""Time split with purge gaps, random split, and the minimum-data refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import InsufficientDataError
from training.split import check_min_data, random_split, time_split

from .conftest import make_frame

HORIZON = pd.Timedelta(days=28)


def test_time_split_orders_windows_and_purges_overlapping_labels(small_frame):
    y = small_frame["label"].to_numpy()
    split = time_split(small_frame["as_of"], y, horizon=HORIZON)
    t = small_frame["as_of"]
    train, valid, test = t.iloc[split.train], t.iloc[split.valid], t.iloc[split.test]
    # Every training label window closes before validation starts, every validation
    # label window before the test window starts.
    assert (train + HORIZON).max() <= valid.min()
    assert (valid + HORIZON).max() <= test.min()
    assert split.purged == len(t) - len(train) - len(valid) - len(test) > 0
    assert not set(split.train) & set(split.valid) | set(split.train) & set(split.test)
    # Roughly the asked-for share of rows tests.
    assert 0.15 < len(test) / len(t) < 0.3
    assert split.boundaries["test_start"] == test.min().isoformat()


def test_time_split_keeps_a_lead_on_both_sides_with_earlier_labels_only():
    as_of = pd.Series(pd.date_range("2024-01-01", periods=40, freq="7D", tz="UTC"))
    y = np.tile([0, 1], 20)
    split = time_split(as_of, y, horizon=pd.Timedelta(days=14))
    assert len(split.train) and len(split.test)
    assert as_of.iloc[split.train].max() + pd.Timedelta(days=14) <= as_of.iloc[split.valid].min()


def test_time_split_refuses_a_range_too_short_for_the_gaps(small_frame):
    y = small_frame["label"].to_numpy()
    with pytest.raises(InsufficientDataError, match="too short|too little|single"):
        time_split(small_frame["as_of"], y, horizon=pd.Timedelta(days=365))


def test_time_split_refuses_a_single_date():
    as_of = pd.Series([pd.Timestamp("2024-01-01", tz="UTC")] * 100)
    with pytest.raises(InsufficientDataError, match="single snapshot date"):
        time_split(as_of, np.tile([0, 1], 50), horizon=HORIZON)


def test_random_split_is_stratified_60_20_20():
    y = np.r_[np.ones(200), np.zeros(800)].astype(int)
    split = random_split(y, random_state=1)
    assert (len(split.train), len(split.valid), len(split.test)) == (600, 200, 200)
    for part in (split.train, split.valid, split.test):
        assert y[part].mean() == pytest.approx(0.2, abs=0.01)
    assert split.kind == "random"


@pytest.mark.parametrize(("pos", "neg"), [(39, 1000), (1000, 39)])
def test_min_data_refuses_fewer_than_40_per_class(pos, neg):
    y = np.r_[np.ones(pos), np.zeros(neg)]
    with pytest.raises(InsufficientDataError, match=f"got {pos} converted and {neg} unconverted"):
        check_min_data(y)


def test_min_data_accepts_40_each():
    check_min_data(np.r_[np.ones(40), np.zeros(40)])


def test_fixture_frame_has_unique_snapshots():
    frame, _ = make_frame(500)
    assert not frame.duplicated(["lead_id", "as_of"]).any()
