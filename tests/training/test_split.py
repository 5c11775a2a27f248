"""Time split with purge gaps, random split, and the minimum-data refusals.

Every split is a partition: each row is in exactly one part or purged, ties of the time
column stay on one side of a boundary, and the logged counts add up to the rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ------------------------------------------------ every row in exactly one part

T0 = pd.Timestamp("2025-01-06T00:00:00Z")
NO_GAP = pd.Timedelta(0)


def assert_partition(split, n: int, times: pd.Series | None = None,
                     gap: pd.Timedelta = NO_GAP) -> None:
    """Disjoint parts covering every row but the purged; counts that add up; time order."""
    parts = [np.asarray(split.train), np.asarray(split.valid), np.asarray(split.test)]
    every = np.concatenate(parts)
    assert len(np.unique(every)) == len(every), "a row is in two parts"
    assert every.min() >= 0 and every.max() < n
    summary = split.summary()
    counts = [summary[k] for k in ("n_train", "n_valid", "n_test", "n_purged")]
    assert min(counts) >= 0 and sum(counts) == n, summary
    assert counts[:3] == [len(p) for p in parts]
    if times is None:
        assert summary["n_purged"] == 0
        return
    t = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    train, valid, test = (t[p] for p in parts)
    # Each part's label windows close before the next part starts; and so ties of the
    # time column never straddle a boundary.
    assert train.max() + gap < valid.min()
    assert valid.max() + gap < test.min()
    part_of = np.full(n, -1)
    for k, p in enumerate(parts):
        part_of[p] = k
    by_time = pd.Series(part_of).groupby(np.asarray(t)).nunique()
    assert (by_time == 1).all(), "rows sharing a time are in different parts"


@pytest.mark.parametrize("gap_days", [0, 7])
def test_time_split_puts_ties_at_the_boundaries_on_one_side(gap_days):
    # Three export days of 100 leads each (a created_at rounded to the day): the test
    # window starts on a day that also closes the validation window's candidates.
    days = [0, 30, 60] if gap_days == 0 else [0, 30, 60, 90]
    t = pd.Series(np.repeat([T0 + pd.Timedelta(days=d) for d in days], 100))
    y = np.tile([0, 1], len(t) // 2)
    gap = pd.Timedelta(days=gap_days)
    split = time_split(t, y, horizon=gap)
    assert_partition(split, len(t), t, gap)


def test_time_split_refuses_a_negative_horizon(small_frame):
    with pytest.raises(ValueError, match="'horizon' parameter of time_split"):
        time_split(small_frame["as_of"], small_frame["label"].to_numpy(),
                   horizon=pd.Timedelta(days=-1))


@st.composite
def tied_times(draw):
    """Few distinct times (2 to 8, on a daily grid), many rows on each, both classes."""
    offsets = draw(st.lists(st.integers(0, 120), min_size=2, max_size=8, unique=True))
    sizes = draw(st.lists(st.integers(1, 80), min_size=len(offsets), max_size=len(offsets)))
    t = np.repeat([T0 + pd.Timedelta(days=d) for d in offsets], sizes)
    order = np.random.default_rng(draw(st.integers(0, 2**16))).permutation(len(t))
    y = (np.arange(len(t)) % 2)[np.argsort(order)]  # both classes at every time, shuffled
    return pd.Series(t[order]), y


@settings(max_examples=300, deadline=None)
@given(data=tied_times(), gap_days=st.sampled_from([0, 0, 1, 7, 30]),
       valid_frac=st.sampled_from([0.1, 0.2, 0.3]), test_frac=st.sampled_from([0.1, 0.2, 0.4]))
def test_time_split_is_a_partition_in_time_order(data, gap_days, valid_frac, test_frac):
    t, y = data
    gap = pd.Timedelta(days=gap_days)
    try:
        split = time_split(t, y, horizon=gap, valid_frac=valid_frac, test_frac=test_frac)
    except InsufficientDataError:
        return  # too few distinct times for the gaps: refusing is the right answer
    assert_partition(split, len(t), t, gap)


@settings(max_examples=100, deadline=None)
@given(n_pos=st.integers(10, 200), n_neg=st.integers(10, 400), seed=st.integers(0, 99),
       valid_frac=st.sampled_from([0.1, 0.2, 0.3]), test_frac=st.sampled_from([0.1, 0.2, 0.4]))
def test_random_split_is_a_partition(n_pos, n_neg, seed, valid_frac, test_frac):
    y = np.random.default_rng(seed).permutation(np.r_[np.ones(n_pos), np.zeros(n_neg)])
    split = random_split(y, valid_frac=valid_frac, test_frac=test_frac, random_state=seed)
    assert_partition(split, len(y))
