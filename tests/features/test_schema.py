"""The data contract: every validation case names the field, value, row and lead."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import DataValidationError
from features.schema import validate_activities, validate_leads


def leads_frame(**overrides) -> pd.DataFrame:
    base = {
        "lead_id": ["L-1", "L-2", "L-3"],
        "created_at": ["2026-01-01T00:00:00Z", "2026-01-02T10:00:00+02:00", "2026-01-03T00:00:00Z"],
        "company_size": [10, 250, None],
        "industry": ["software", None, "retail"],
        "email": ["a@example.com", "b@gmail.com", None],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def activities_frame(**overrides) -> pd.DataFrame:
    base = {
        "lead_id": ["L-1", "L-1", "L-2"],
        "occurred_at": ["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"],
        "type": ["page_view", "pricing_page_view", "email_open"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_valid_leads_get_canonical_dtypes():
    out = validate_leads(leads_frame())
    assert str(out["created_at"].dtype) == "datetime64[ns, UTC]"
    assert out["created_at"].iloc[1] == pd.Timestamp("2026-01-02T08:00:00Z")
    assert out["company_size"].dtype == "float64"
    assert str(out["lead_id"].dtype) == "string"
    assert out["converted_at"].isna().all()
    assert str(out["converted_at"].dtype) == "datetime64[ns, UTC]"


def test_unparsable_timestamp_names_field_value_row_and_lead():
    acts = activities_frame(occurred_at=["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", "yesterday"])
    with pytest.raises(DataValidationError) as info:
        validate_activities(acts)
    message = str(info.value)
    assert "activities.occurred_at: 'yesterday' is not a timestamp; expected ISO 8601" in message
    assert message.endswith("(row 2, lead_id L-2)")


def test_naive_timestamps_are_rejected_unless_declared_utc():
    leads = leads_frame(created_at=["2026-01-01 00:00:00", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"])
    with pytest.raises(DataValidationError, match=r"leads.created_at: '2026-01-01 00:00:00' has no time zone.*row 0, lead_id L-1"):
        validate_leads(leads)
    out = validate_leads(leads, assume_utc=True)
    assert out["created_at"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z")


def test_naive_datetime_dtype_is_rejected_too():
    leads = leads_frame(created_at=pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]))
    with pytest.raises(DataValidationError, match="has no time zone"):
        validate_leads(leads)
    assert validate_leads(leads, assume_utc=True)["created_at"].dt.tz is not None


def test_duplicate_lead_ids_name_both_rows():
    with pytest.raises(DataValidationError, match=r"leads.lead_id: 'L-1' is a duplicate of row 0.*\(row 2, lead_id L-1\)"):
        validate_leads(leads_frame(lead_id=["L-1", "L-2", "L-1"]))


def test_missing_required_column_is_named():
    with pytest.raises(DataValidationError, match=r"leads.created_at: None is missing"):
        validate_leads(leads_frame().drop(columns="created_at"))


def test_activities_of_unknown_leads_are_rejected():
    acts = activities_frame(lead_id=["L-1", "L-9", "L-2"])
    with pytest.raises(DataValidationError, match=r"activities.lead_id: 'L-9' is not a known lead.*\(row 1, lead_id L-9\)"):
        validate_activities(acts, lead_ids=pd.Series(["L-1", "L-2", "L-3"]))


def test_activities_in_the_future_are_rejected():
    acts = activities_frame(occurred_at=["2026-01-05T00:00:00Z", "2030-01-01T00:00:00Z", "2026-01-07T00:00:00Z"])
    with pytest.raises(DataValidationError, match=r"'2030-01-01T00:00:00Z' is in the future.*row 1, lead_id L-1"):
        validate_activities(acts, now=pd.Timestamp("2026-02-01T00:00:00Z"))
    # Without a clock to compare against, the same table is accepted.
    assert len(validate_activities(acts).frame) == 3


def test_activities_before_lead_creation_are_kept():
    acts = activities_frame(occurred_at=["2025-06-01T00:00:00Z", "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"])
    assert len(validate_activities(acts, lead_ids=pd.Series(["L-1", "L-2"])).frame) == 3


def test_negative_company_size_is_rejected():
    with pytest.raises(DataValidationError, match=r"leads.company_size: -5(\.0)? is negative.*row 1, lead_id L-2"):
        validate_leads(leads_frame(company_size=[10, -5, None]))


def test_non_numeric_company_size_is_rejected():
    with pytest.raises(DataValidationError, match=r"leads.company_size: 'lots' is not a number"):
        validate_leads(leads_frame(company_size=[10, "lots", None]))


def test_unknown_activity_types_are_kept_and_reported():
    acts = activities_frame(type=["page_view", "Meeting_Booked", "meeting_booked"])
    out = validate_activities(acts)
    assert out.unknown_types == {"meeting_booked": 2}
    assert out.frame["type"].tolist() == ["page_view", "meeting_booked", "meeting_booked"]


def test_empty_activity_type_is_rejected():
    with pytest.raises(DataValidationError, match=r"activities.type: '' is empty"):
        validate_activities(activities_frame(type=["page_view", "", "email_open"]))


def test_outcome_before_creation_is_rejected():
    leads = leads_frame(converted_at=[None, "2025-01-01T00:00:00Z", None])
    with pytest.raises(DataValidationError, match=r"leads.converted_at: .* is before created_at"):
        validate_leads(leads)


def test_every_problem_is_reported_at_once():
    leads = leads_frame(lead_id=["L-1", None, "L-1"], company_size=[-1, 2, 3])
    with pytest.raises(DataValidationError) as info:
        validate_leads(leads)
    fields = {issue.field for issue in info.value.issues}
    assert fields == {"lead_id", "company_size"}
    assert len(info.value.issues) == 3


def test_input_frame_is_not_mutated():
    leads = leads_frame()
    before = leads.copy()
    validate_leads(leads)
    pd.testing.assert_frame_equal(leads, before)


def test_out_of_range_timestamp_is_named_not_overflowed():
    acts = activities_frame(occurred_at=["2026-01-05T00:00:00Z", "2300-01-01T00:00:00Z", "1900-01-01T00:00:00Z"])
    with pytest.raises(DataValidationError) as info:
        validate_activities(acts)
    rows = [(i.field, i.row, i.lead_id) for i in info.value.issues]
    assert rows == [("occurred_at", 1, "L-1"), ("occurred_at", 2, "L-2")]
    assert "is out of range; expected a time from 1970 to 2199" in str(info.value)


def test_validation_of_a_large_clean_table_is_vectorised():
    # Not a timing test: a clean table must not format an issue (or a lead id) per row,
    # which is what made 5.5M activities take seconds before any check ran.
    n = 200_000
    acts = pd.DataFrame(
        {
            "lead_id": [f"L-{i % 1000}" for i in range(n)],
            "occurred_at": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
            "type": "page_view",
        }
    )
    known = pd.Series([f"L-{i}" for i in range(1000)])
    out = validate_activities(acts, lead_ids=known)
    assert len(out.frame) == n and out.unknown_types == {}


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_range_edges_hold_in_every_datetime_unit(unit):
    inside = ["1970-01-01T00:00:00Z", "2199-12-31T23:59:59Z"]
    outside = ["1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z"]
    stamps = pd.Series(pd.to_datetime(inside + outside + [None], utc=True)).astype(
        f"datetime64[{unit}, UTC]")
    acts = activities_frame(lead_id=["L-1"] * 5, occurred_at=stamps, type=["page_view"] * 5)
    with pytest.raises(DataValidationError) as info:
        validate_activities(acts)
    flagged = [(i.row, i.expected[:15]) for i in info.value.issues]
    assert flagged == [(2, "is out of range"), (3, "is out of range"), (4, "is missing; eve")]
    clean = validate_activities(acts.iloc[:2]).frame
    assert str(clean["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert clean["occurred_at"].tolist() == pd.to_datetime(inside, utc=True).tolist()
