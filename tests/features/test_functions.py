"""Feature functions and the registry, on tiny hand-built frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features import registry
from features.functions import FEATURE_FUNCTIONS, company_size_band_of, region_of
from features.online import features_at
from features.reasons import Reason
from features.schema import ACTIVITY_TYPES, LEAD_PII_FIELDS, validate_activities, validate_leads

AS_OF = pd.Timestamp("2026-03-02T00:00:00Z")  # a Monday, on the weekly grid


def leads_frame(**columns) -> pd.DataFrame:
    base = {"lead_id": ["A"], "created_at": ["2026-01-01T00:00:00Z"]}
    base.update(columns)
    return validate_leads(pd.DataFrame(base))


def acts_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (lead_id, occurred_at, type[, url[, campaign]])."""
    frame = pd.DataFrame(
        [(*r, *([None] * (5 - len(r)))) for r in rows],
        columns=["lead_id", "occurred_at", "type", "url", "campaign"],
    )
    return validate_activities(frame).frame


def one_row(leads: pd.DataFrame, acts: pd.DataFrame, as_of=AS_OF) -> dict:
    return features_at(leads, acts, as_of).iloc[0].to_dict()


def ago(days: float = 0, **kw) -> str:
    return (AS_OF - pd.Timedelta(days=days, **kw)).isoformat()


# --- the registry --------------------------------------------------------------------------


def test_registry_declares_every_function_once_with_a_field_and_a_description():
    names = registry.feature_names()
    assert len(names) == len(set(names)) == len(FEATURE_FUNCTIONS)
    assert set(names) == set(FEATURE_FUNCTIONS)
    for feature in registry.FEATURES:
        assert feature.field in registry.FIELDS
        assert feature.name in registry.FIELDS[feature.field].features
        assert feature.description and "\n" not in feature.description
    declared = [n for f in registry.FIELDS.values() for n in f.features]
    assert sorted(declared) == sorted(names)
    assert registry.FEATURE_SET_VERSION.count(".") == 2


def test_no_feature_is_pii_and_pii_values_change_no_feature():
    assert not set(registry.feature_names()) & set(LEAD_PII_FIELDS)
    first = leads_frame(email=["ann@gmail.com"], first_name=["Ann"], phone=["+1 555"])
    second = leads_frame(email=["bob@gmail.com"], first_name=["Bob"], phone=["+44 20"])
    acts = acts_frame([("A", ago(3), "page_view")])
    pd.testing.assert_frame_equal(
        features_at(first, acts, AS_OF), features_at(second, acts, AS_OF), check_exact=True
    )


def test_field_of_groups_windows_and_rejects_unknown_names():
    assert registry.field_of("pricing_page_view_count_7d") == "pricing_page_visits"
    assert registry.field_of("days_since_last_pricing_page_view") == "pricing_page_visits"
    with pytest.raises(KeyError, match="'nope' is not a feature"):
        registry.field_of("nope")


def test_online_rows_have_the_declared_columns_and_dtypes():
    out = features_at(leads_frame(), acts_frame([("A", ago(1), "page_view")]), AS_OF)
    assert list(out.columns) == ["lead_id", "as_of", *registry.feature_names()]
    for name in registry.categorical_features():
        assert str(out[name].dtype) == "string", name
    for name in registry.numeric_features():
        assert out[name].dtype == "float64", name


# --- engagement ------------------------------------------------------------------------------


def test_window_counts_include_the_window_start_and_exclude_as_of():
    acts = acts_frame(
        [
            ("A", ago(7), "pricing_page_view"),  # exactly 7 days back: inside the 7-day window
            ("A", ago(7, seconds=1), "pricing_page_view"),  # just outside it
            ("A", ago(0, seconds=1), "pricing_page_view"),
            ("A", ago(0), "pricing_page_view"),  # at as_of: not before it, never used
            ("A", ago(-3), "pricing_page_view"),  # after as_of
            ("A", ago(89), "email_open"),
            ("A", ago(91), "email_open"),
        ]
    )
    row = one_row(leads_frame(), acts)
    assert row["pricing_page_view_count_7d"] == 2
    assert row["pricing_page_view_count_30d"] == 3
    assert row["email_open_count_30d"] == 0
    assert row["email_open_count_90d"] == 1
    assert row["activity_count_90d"] == 4
    assert row["days_since_last_pricing_page_view"] == pytest.approx(1 / 86400)


def test_never_is_nan_not_a_sentinel():
    row = one_row(leads_frame(), acts_frame([("B", ago(1), "page_view")]).iloc[0:0])
    for name in ("days_since_last_activity", "days_since_last_demo_request"):
        assert math.isnan(row[name])
    assert row["activity_count_90d"] == 0
    assert row["engagement_decayed_hl7d"] == 0
    assert row["activity_velocity"] == 1.0
    assert pd.isna(row["first_touch_channel"])


def test_unknown_types_count_in_generic_features_only():
    acts = acts_frame([("A", ago(2), "partner_portal_login"), ("A", ago(1), "page_view")])
    row = one_row(leads_frame(), acts)
    assert row["activity_count_7d"] == 2
    assert sum(row[f"{t}_count_7d"] for t in ACTIVITY_TYPES) == 1
    assert row["days_since_last_activity"] == 1
    assert row["active_days_30d"] == 2
    # Generic weight 1 for the unknown type, 1 for the page view.
    assert row["engagement_decayed_hl7d"] == pytest.approx(2 ** (-2 / 7) + 2 ** (-1 / 7))


def test_key_action_recency_picks_the_latest_of_that_type():
    acts = acts_frame(
        [
            ("A", ago(20), "demo_request"),
            ("A", ago(5), "demo_request"),
            ("A", ago(2), "page_view"),
            ("A", ago(40), "webinar_attended"),
        ]
    )
    row = one_row(leads_frame(), acts)
    assert row["days_since_last_demo_request"] == 5
    assert row["days_since_last_webinar_attended"] == 40
    assert math.isnan(row["days_since_last_pricing_page_view"])
    assert row["days_since_last_activity"] == 2


def test_decayed_engagement_matches_the_formula():
    acts = acts_frame(
        [("A", ago(3), "demo_request"), ("A", ago(10), "email_open"), ("A", ago(60), "unsubscribe")]
    )
    row = one_row(leads_frame(), acts)
    for h in (7, 30):
        expected = 6 * 2 ** (-3 / h) + 0.5 * 2 ** (-10 / h) + 0.0
        assert row[f"engagement_decayed_hl{h}d"] == pytest.approx(expected, rel=1e-12)


def test_velocity_compares_the_last_week_with_the_30_days_before():
    acts = acts_frame(
        [("A", ago(1), "page_view"), ("A", ago(2), "page_view"), ("A", ago(3), "page_view")]
        + [("A", ago(d), "page_view") for d in (8, 20, 36.9)]
        + [("A", ago(38), "page_view")]  # before the comparison window
    )
    row = one_row(leads_frame(), acts)
    assert row["activity_velocity"] == pytest.approx((3 + 1) / (3 * 7 / 30 + 1))


def test_active_days_are_distinct_utc_days_even_when_the_window_cuts_a_day():
    as_of = pd.Timestamp("2026-03-02T12:00:00Z")
    acts = acts_frame(
        [
            ("A", "2026-01-31T10:00:00Z", "page_view"),  # before the 30-day window
            ("A", "2026-01-31T13:00:00Z", "page_view"),  # same UTC day, inside it
            ("A", "2026-01-31T14:00:00Z", "email_open"),
            ("A", "2026-02-10T01:00:00Z", "page_view"),
            ("A", "2026-02-10T23:00:00Z", "page_view"),
            ("A", "2026-03-02T11:00:00Z", "page_view"),
        ]
    )
    row = one_row(leads_frame(), acts, as_of)
    assert row["active_days_30d"] == 3
    assert row["active_days_90d"] == 3


def test_touch_channels_prefer_utm_tags_then_type_then_campaign():
    acts = acts_frame(
        [
            ("A", ago(30), "page_view", "https://x.io/?utm_source=Newsletter&x=1"),
            ("A", ago(20), "email_click"),
            ("A", ago(10), "form_submit", None, "spring-promo"),
            ("A", ago(5), "page_view", "https://x.io/p?a=1&utm_medium=CPC&utm_source=g"),
            ("A", ago(1), "content_download"),
        ]
    )
    row = one_row(leads_frame(), acts)
    assert row["first_touch_channel"] == "newsletter"
    assert row["last_touch_channel"] == "web"
    assert one_row(leads_frame(), acts, AS_OF - pd.Timedelta(days=4))["last_touch_channel"] == "cpc"
    assert one_row(leads_frame(), acts, AS_OF - pd.Timedelta(days=9))["last_touch_channel"] == "campaign"
    assert one_row(leads_frame(), acts, AS_OF - pd.Timedelta(days=19))["last_touch_channel"] == "email"


# --- fit -------------------------------------------------------------------------------------


def test_company_size_bands():
    sizes = pd.Series([0, 9, 10, 249, 250, 999, 1000, 5000, np.nan])
    assert company_size_band_of(sizes).tolist() == [
        "1-9", "1-9", "10-49", "50-249", "250-999", "250-999", "1000-4999", "5000+", pd.NA,
    ]


def test_region_of_codes_and_names():
    got = region_of(pd.Series(["de", "United States", "Atlantis", None, ""], dtype="string"))
    assert got.tolist() == ["Europe", "North America", "Other", pd.NA, pd.NA]


def test_fit_features_strip_blanks_and_derive_from_email_without_using_it():
    leads = validate_leads(
        pd.DataFrame(
            {
                "lead_id": ["A", "B", "C", "D"],
                "created_at": ["2026-01-01T00:00:00Z"] * 4,
                "email": ["x@Gmail.com", "y@acme.io", None, "z@yahoo.co.uk"],
                "industry": [" software ", "", None, "retail"],
                "company_size": [300, None, 5, 20],
                "seniority": ["vp", None, None, None],
            }
        )
    )
    out = features_at(leads, acts_frame([]), AS_OF)
    assert out["free_mail"].tolist()[:2] == [1.0, 0.0]
    assert math.isnan(out["free_mail"].iloc[2]) and out["free_mail"].iloc[3] == 1.0
    assert out["industry"].tolist() == ["software", pd.NA, pd.NA, "retail"]
    # industry, company_size, seniority, email of 7 profile fields.
    assert out["profile_completeness"].iloc[0] == pytest.approx(4 / 7)
    assert out["lead_age_days"].tolist() == [60.0] * 4
    assert out["company_size_band"].tolist() == ["250-999", pd.NA, "1-9", "10-49"]


# --- reasons ---------------------------------------------------------------------------------


def test_reasons_group_impacts_by_field_and_speak_plainly():
    acts = acts_frame(
        [("A", ago(d), "pricing_page_view") for d in (1, 2, 3)] + [("A", ago(41), "page_view")]
    )
    row = one_row(leads_frame(company_size=[300], email=["a@gmail.com"]), acts)
    impacts = {
        "pricing_page_view_count_7d": 0.5,
        "pricing_page_view_count_30d": 0.25,
        "days_since_last_pricing_page_view": -0.05,
        "company_size_band": -0.3,
        "free_mail": -0.1,
    }
    reasons = registry.reasons_for(row, impacts)
    assert all(isinstance(r, Reason) for r in reasons)
    by_field = {r.field: r for r in reasons}
    assert set(by_field) == {"pricing_page_visits", "company_size", "email_domain"}
    pricing = by_field["pricing_page_visits"]
    assert pricing.impact == pytest.approx(0.7)
    assert pricing.sentence == "Viewed the pricing page 3 times in the last 7 days"
    assert pricing.value == 3 and pricing.label
    assert by_field["company_size"].sentence == "Works at a company of 250-999 employees"
    assert by_field["email_domain"].sentence == "Signed up with a free email address"
    assert [r.field for r in reasons] == ["pricing_page_visits", "company_size", "email_domain"]


def test_recent_activity_sentence_says_how_long_a_lead_went_quiet():
    row = one_row(leads_frame(), acts_frame([("A", ago(41, hours=3), "page_view")]))
    (reason,) = registry.reasons_for(row, {"days_since_last_activity": -0.4})
    assert reason.sentence == "No activity for 41 days" and reason.value == 41


@pytest.mark.parametrize("name", registry.feature_names())
def test_every_field_describes_an_empty_lead_without_error(name):
    row = one_row(leads_frame(), acts_frame([]))
    (reason,) = registry.reasons_for(row, {name: 0.1})
    assert reason.sentence and reason.field == registry.field_of(name)
