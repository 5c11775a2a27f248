"""The activity index: sorted by (lead, time, type), whatever the input order."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.history import index_activities
from features.schema import ACTIVITY_TYPES

TYPES = [*ACTIVITY_TYPES[:4], "custom_event"]  # a few known types and an unknown one
BASE = pd.Timestamp("2026-01-01T00:00:00Z")


@st.composite
def activity_tables(draw) -> tuple[pd.DataFrame, pd.Series]:
    """Activities of a few leads on a coarse time grid, so ties on (lead, time, type) occur."""
    n_leads = draw(st.integers(1, 5))
    rows = draw(st.lists(
        st.tuples(st.integers(0, n_leads), st.integers(-3, 40), st.sampled_from(TYPES)),
        min_size=0, max_size=60,
    ))
    ids = pd.Series([f"L{i}" for i in range(n_leads)], dtype="string")
    frame = pd.DataFrame({
        # Lead n_leads is not in ids: its rows must be ignored.
        "lead_id": pd.array([f"L{lead}" for lead, _, _ in rows], dtype="string"),
        "occurred_at": pd.to_datetime(
            [BASE + pd.Timedelta(hours=6 * t) for _, t, _ in rows], utc=True
        ).as_unit("ns"),
        "type": pd.array([kind for _, _, kind in rows], dtype="string"),
    })
    return frame, ids


def _arrays(index) -> dict[str, np.ndarray]:
    out = {name: getattr(index, name) for name in (
        "code", "time", "times", "key", "lead_start", "type_cum", "new_day_cum", "first_time",
        "channel_codes")}
    out |= {f"last_{k}": v for k, v in index.last_key_action.items()}
    out |= {f"decay_{k}": v for k, v in index.decay_cum.items()}
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(activity_tables(), st.randoms(use_true_random=False))
def test_the_index_is_sorted_by_lead_time_type_and_ignores_input_order(table, random):
    frame, ids = table
    index = index_activities(frame, ids, half_lives=(7.0, 30.0))
    known = frame[frame["lead_id"].isin(ids)]
    assert index.n == len(known)
    # Lexicographic order on (lead code, time, type code), as np.lexsort gives it.
    type_code = np.array([ACTIVITY_TYPES.index(t) if t in ACTIVITY_TYPES else -1
                          for t in known["type"]], dtype=np.int64)
    code = ids.tolist()
    expected = sorted(zip([code.index(i) for i in known["lead_id"]],
                          known["occurred_at"].to_numpy(dtype="datetime64[ns]").view(np.int64), type_code,
                          strict=True))
    got_types = (index.type_cum[1:] - index.type_cum[:-1]).argmax(axis=1) if index.n else []
    unknown = (index.type_cum[1:] - index.type_cum[:-1]).sum(axis=1) == 0 if index.n else []
    got = list(zip(index.code.tolist(), index.time.tolist(),
                   np.where(unknown, -1, got_types).tolist(), strict=True))
    assert got == [tuple(map(int, row)) for row in expected]
    # The key ranks (lead, time) consistently with the distinct times.
    np.testing.assert_array_equal(index.times[index.key % (len(index.times) + 1)], index.time)
    # Any order of the same rows gives the same index, bit for bit.
    shuffled = frame.iloc[random.sample(range(len(frame)), len(frame))]
    again = index_activities(shuffled, ids, half_lives=(7.0, 30.0))
    for name, array in _arrays(index).items():
        np.testing.assert_array_equal(_arrays(again)[name], array, err_msg=name)
