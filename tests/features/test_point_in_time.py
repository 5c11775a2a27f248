"""Point in time: nothing at or after ``as_of`` and no outcome ever reaches a feature.

Property tests (hypothesis) on small random histories, and the issue's "done when" on
generated data: every row with ``as_of <= T`` is identical whether or not the data after
``T`` exists.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_training_set
from features.grid import snapshot_grid
from features.online import features_at
from features.registry import feature_names
from features.schema import ACTIVITY_TYPES, validate_activities, validate_leads
from tests.features.test_build import crm_tables, load_benchmark

BASE = pd.Timestamp("2026-01-05T00:00:00Z")  # a Monday on the weekly grid
SPAN_S = 200 * 86_400
TYPES = [*ACTIVITY_TYPES, "partner_portal_login"]
URLS = [None, "https://x.io/p?utm_medium=cpc", "https://x.io/?utm_source=newsletter", "https://x.io/"]

# The autouse isolation fixture only points homes at tmp_path; sharing it across
# hypothesis examples is harmless.
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def at(seconds: int) -> pd.Timestamp:
    return BASE + pd.Timedelta(seconds=seconds)


@st.composite
def histories(draw):
    """(leads, activities, as_of): 1-4 leads, up to 40 activities, as_of inside the span."""
    n = draw(st.integers(1, 4))
    ids = [f"L{i}" for i in range(n)]
    leads = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": [at(draw(st.integers(0, SPAN_S))) for _ in ids],
            "industry": [draw(st.sampled_from([None, "software", " retail "])) for _ in ids],
            "company_size": [draw(st.sampled_from([None, 3, 40, 300, 12_000])) for _ in ids],
            "country": [draw(st.sampled_from([None, "DE", "US", "Atlantis"])) for _ in ids],
            "email": [draw(st.sampled_from([None, "a@gmail.com", "b@corp.io"])) for _ in ids],
            "source": [draw(st.sampled_from([None, "organic", "event"])) for _ in ids],
        }
    )
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(ids),
                st.integers(0, SPAN_S),
                st.sampled_from(TYPES),
                st.sampled_from(URLS),
                st.sampled_from([None, "spring"]),
            ),
            max_size=40,
        )
    )
    acts = pd.DataFrame(rows, columns=["lead_id", "t", "type", "url", "campaign"])
    acts["occurred_at"] = [at(t) for t in acts["t"]] if len(acts) else pd.Series(dtype="datetime64[ns, UTC]")
    acts = acts.drop(columns="t")
    as_of = at(draw(st.integers(1, SPAN_S)))
    return validate_leads(leads), validate_activities(acts).frame, as_of


def shifted(frame: pd.DataFrame, columns: list[str], by: pd.Timedelta) -> pd.DataFrame:
    out = frame.copy()
    for column in columns:
        if column in out.columns:
            out[column] = out[column] + by
    return out


@PROPERTY
@given(
    histories(),
    st.lists(st.tuples(st.integers(0, SPAN_S), st.sampled_from(TYPES)), max_size=15),
    st.lists(st.one_of(st.none(), st.integers(-SPAN_S, SPAN_S)), min_size=8, max_size=8),
)
def test_later_activities_and_outcomes_change_no_feature(history, later, outcomes):
    leads, acts, as_of = history
    before = features_at(leads, acts, as_of)
    # Activities at or after as_of (at as_of exactly included), for random leads.
    extra = pd.DataFrame(
        {
            "lead_id": [leads["lead_id"].iloc[i % len(leads)] for i in range(len(later))],
            "occurred_at": [as_of + pd.Timedelta(seconds=s) for s, _ in later],
            "type": [t for _, t in later],
        }
    )
    more = validate_activities(pd.concat([acts, extra], ignore_index=True)).frame
    # Any outcomes at all, before or after as_of.
    with_outcomes = leads.copy()
    for k, column in enumerate(("converted_at", "disqualified_at")):
        values = outcomes[k * 4 : k * 4 + len(leads)] + [None] * max(0, len(leads) - 4)
        with_outcomes[column] = pd.Series(
            [pd.NaT if v is None else as_of + pd.Timedelta(seconds=v) for v in values[: len(leads)]],
            dtype="datetime64[ns, UTC]",
        )
    after = features_at(with_outcomes, more, as_of)
    pd.testing.assert_frame_equal(after, before, check_exact=True)


@PROPERTY
@given(histories(), st.integers(-3_000, 3_000))
def test_shifting_every_timestamp_by_whole_days_changes_no_feature(history, days):
    """Whole days: active days are counted on UTC calendar days, so only whole-day shifts
    keep every calendar day intact; every other feature is invariant under any shift."""
    leads, acts, as_of = history
    by = pd.Timedelta(days=days)
    before = features_at(leads, acts, as_of)
    after = features_at(
        shifted(leads, ["created_at"], by), shifted(acts, ["occurred_at"], by), as_of + by
    )
    pd.testing.assert_frame_equal(
        after[feature_names()], before[feature_names()], check_exact=True
    )


@PROPERTY
@given(histories(), st.integers(-3_000, 3_000).map(lambda s: s * 3_607))
def test_shifting_by_any_amount_changes_no_feature_but_active_days(history, seconds):
    leads, acts, as_of = history
    by = pd.Timedelta(seconds=seconds)
    before = features_at(leads, acts, as_of)
    after = features_at(
        shifted(leads, ["created_at"], by), shifted(acts, ["occurred_at"], by), as_of + by
    )
    names = [n for n in feature_names() if not n.startswith("active_days_")]
    pd.testing.assert_frame_equal(after[names], before[names], check_exact=True)


@PROPERTY
@given(histories(), st.integers(-150, 150))
def test_builder_rows_shift_with_the_grid(history, weeks):
    """Shifting the data by whole multiples of ``every`` maps the grid onto itself."""
    leads, acts, _ = history
    by = pd.Timedelta(weeks=weeks)
    outcome_columns = ["created_at", "converted_at", "disqualified_at"]
    before = build_training_set(leads, acts, censored="keep")
    after = build_training_set(
        shifted(leads, outcome_columns, by), shifted(acts, ["occurred_at"], by), censored="keep"
    )
    expected = before.assign(as_of=before["as_of"] + by)
    pd.testing.assert_frame_equal(after, expected, check_exact=True)


# --- the "done when", on generated data ----------------------------------------------


@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


def cut_at(leads: pd.DataFrame, acts: pd.DataFrame, cut: pd.Timestamp):
    """The data as it looked at ``cut``: later activities removed, later outcomes erased."""
    past = leads.copy()
    for column in ("converted_at", "disqualified_at"):
        past[column] = past[column].where(past[column] <= cut)
    return past, acts[acts["occurred_at"] <= cut].reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("offset", [pd.Timedelta(0), pd.Timedelta(days=3, hours=7, seconds=5)])
def test_rows_up_to_t_are_identical_without_the_data_after_t(request, bench, offset):
    leads, acts = crm_tables(request, bench)
    first, last = leads["created_at"].min(), acts["occurred_at"].max()
    # Mid-data, on the weekly grid when offset is 0 (the grid is anchored on a Monday).
    cut = snapshot_grid(first, first + (last - first) / 2)[-1] + offset
    past_leads, past_acts = cut_at(leads, acts, cut)
    assert len(past_acts) < len(acts)
    assert past_leads["converted_at"].notna().sum() < leads["converted_at"].notna().sum()

    features = ["lead_id", "as_of", *feature_names()]
    full = build_training_set(leads, acts, end=cut, censored="keep")
    truncated = build_training_set(past_leads, past_acts, end=cut, censored="keep")
    assert full["as_of"].max() <= cut and len(full) > 1_000
    pd.testing.assert_frame_equal(truncated[features], full[features], check_exact=True)

    # With the defaults (own data end, censored snapshots dropped), the truncated build's
    # rows with as_of <= T are full-build rows with the same values. (Leads created after
    # T are still in the table, so the truncated build has later snapshots too.)
    full_default = build_training_set(leads, acts)
    truncated_default = build_training_set(past_leads, past_acts)
    truncated_default = truncated_default[truncated_default["as_of"] <= cut]
    assert len(truncated_default) > 1_000
    merged = truncated_default[features].merge(
        full_default[features], on=["lead_id", "as_of"], how="left", suffixes=("", "_full"),
        indicator=True,
    )
    assert (merged["_merge"] == "both").all()
    for name in feature_names():
        left, right = merged[name], merged[f"{name}_full"]
        if str(left.dtype) == "string":
            assert left.fillna("<NA>").tolist() == right.fillna("<NA>").tolist(), name
        else:
            np.testing.assert_array_equal(left.to_numpy(), right.to_numpy(), err_msg=name)
