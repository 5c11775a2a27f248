"""Scoring with rules: point in time, decay, windows, caps, reasons, and monotonicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.grading import score_from_probability
from features.reasons import Reason
from features.schema import ACTIVITY_TYPES, validate_activities, validate_leads
from rules_fallback import evaluate, load_rules, parse_rules, points_to_probability, score_leads

AS_OF = pd.Timestamp("2026-03-01T00:00:00Z")
DEFAULT = load_rules()

PRICING_ONLY = parse_rules(
    """
version: "t"
engagement_rules:
  - name: pricing_page_visits
    field: pricing_page_visits
    label: Pricing page visits
    activity: pricing_page_view
    points: 8
    cap: 20
    window_days: 30
    half_life_days: 10
    sentence: "Viewed the pricing page {times} in the last {window_days} days"
  - name: docs_visits
    field: docs_visits
    label: Docs visits
    activity: page_view
    where: {field: url, regex: '/docs/'}
    points: 1
    cap: 50
    window_days: 90
    sentence: "Read the docs {times}"
mapping: {max_points: 30, min_points: -30, intercept: -2, slope: 0.1}
grading: {a: 60, b: 30, c: 10}
"""
)


def leads(n: int = 3, **columns) -> pd.DataFrame:
    base = {
        "lead_id": [f"L{i}" for i in range(n)],
        "created_at": ["2025-06-01T00:00:00Z"] * n,
    }
    base.update(columns)
    return validate_leads(pd.DataFrame(base))


def activities(rows: list[tuple[str, str, float]], **extra) -> pd.DataFrame:
    """(lead_id, type, days before AS_OF) triples as a validated activities frame."""
    frame = pd.DataFrame(
        {
            "lead_id": pd.Series([r[0] for r in rows], dtype="string"),
            "occurred_at": pd.Series(
                [AS_OF - pd.Timedelta(days=r[2]) for r in rows], dtype="datetime64[ns, UTC]"
            ),
            "type": pd.Series([r[1] for r in rows], dtype="string"),
            **extra,
        }
    )
    return validate_activities(frame).frame


def points_of(rules, lead_frame, activity_frame, as_of=AS_OF) -> np.ndarray:
    return score_leads(rules, lead_frame, activity_frame, as_of, reasons=False)["points"].to_numpy()


# --------------------------------------------------------------------------- output shape


def test_output_has_one_row_per_lead_in_input_order():
    frame = leads(3, seniority=["VP", None, "Student"])
    frame = frame.iloc[[2, 0, 1]].reset_index(drop=True)
    out = score_leads(DEFAULT, frame, activities([("L0", "demo_request", 3)]), AS_OF)
    assert out["lead_id"].tolist() == ["L2", "L0", "L1"]
    assert list(out.columns) == ["lead_id", "points", "probability", "score", "grade", "route", "reasons"]
    assert out["points"].dtype == "float64"
    assert out["score"].tolist() == score_from_probability(out["probability"].to_numpy()).tolist()
    grading = DEFAULT.grading
    assert out["grade"].tolist() == grading.grade(out["score"].to_numpy()).tolist()
    assert out["route"].tolist() == grading.route(out["grade"].to_numpy()).tolist()
    assert all(isinstance(r, Reason) for reasons in out["reasons"] for r in reasons)


def test_probability_follows_the_documented_logistic_map():
    out = score_leads(PRICING_ONLY, leads(1), activities([("L0", "pricing_page_view", 0.0001)]), AS_OF)
    points = out["points"].iloc[0]
    assert out["probability"].iloc[0] == pytest.approx(1 / (1 + np.exp(-(-2 + 0.1 * points))))
    assert points_to_probability(np.array([0.0]), -2, 0.1)[0] == pytest.approx(1 / (1 + np.exp(2)))


def test_no_activities_at_all():
    empty = activities([])
    out = score_leads(DEFAULT, leads(2), empty, AS_OF)
    assert len(out) == 2
    assert (out["points"] <= 0).all()


def test_reasons_false_leaves_the_column_out():
    out = score_leads(DEFAULT, leads(2), activities([]), AS_OF, reasons=False)
    assert "reasons" not in out.columns


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_top_reasons_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="'top_reasons' parameter of score_leads"):
        score_leads(DEFAULT, leads(1), activities([]), AS_OF, top_reasons=bad)


@pytest.mark.parametrize(
    "naive", [pd.Timestamp("2026-03-01"), pd.Series([pd.Timestamp("2026-03-01")]), pd.Series(["2026-03-01"])]
)
def test_naive_as_of_is_rejected(naive):
    with pytest.raises(ValueError, match="no time zone"):
        score_leads(DEFAULT, leads(1), activities([]), naive)


def test_as_of_series_of_text_with_offsets_is_read_as_utc():
    out = score_leads(PRICING_ONLY, leads(1), activities([("L0", "pricing_page_view", 1)]),
                      pd.Series(["2026-03-01T01:00:00+01:00"]))
    assert out["points"].iloc[0] == pytest.approx(8 * 0.5 ** (1 / 10))


def test_numeric_conditions_and_lead_age():
    rules = parse_rules(
        """
version: "t"
fit_rules:
  - {name: big, field: company_size, label: Company size, when: {field: company_size, in: [100, 200]}, points: 3, sentence: "Has {value} employees"}
  - {name: fresh, field: lead_age, label: Lead age, when: {field: lead_age_days, range: {max: 30}}, points: 2, sentence: "Created {value} days ago"}
  - {name: not_retail, field: industry, label: Industry, when: {field: industry, equals: retail, negate: true}, points: 1, sentence: "Works in {value}"}
grading: {a: 50, b: 25, c: 10}
"""
    )
    frame = validate_leads(
        pd.DataFrame(
            {
                "lead_id": ["a", "b", "c"],
                "created_at": ["2026-02-20T00:00:00Z", "2025-01-01T00:00:00Z", "2026-02-28T00:00:00Z"],
                "company_size": [100, 150, None],
                "industry": ["Software", " RETAIL ", None],
            }
        )
    )
    ev = evaluate(rules, frame, activities([]), AS_OF)
    assert ev.points.tolist() == [[3, 2, 1], [0, 0, 0], [0, 2, 0]]


# -------------------------------------------------------------------------- point in time


def test_activities_at_or_after_as_of_are_ignored():
    frame = leads(1)
    before = points_of(PRICING_ONLY, frame, activities([("L0", "pricing_page_view", 1)]))
    with_future = activities(
        [("L0", "pricing_page_view", 1), ("L0", "pricing_page_view", 0), ("L0", "pricing_page_view", -5)]
    )
    assert points_of(PRICING_ONLY, frame, with_future) == pytest.approx(before)


def test_each_row_has_its_own_as_of_and_leads_may_repeat():
    # Two snapshots of one lead: a month before and at the visit's week.
    frame = leads(1)
    frame = pd.concat([frame, frame], ignore_index=True)
    acts = activities([("L0", "pricing_page_view", 10)])
    as_of = pd.Series([AS_OF - pd.Timedelta(days=40), AS_OF])
    out = score_leads(PRICING_ONLY, frame, acts, as_of)
    assert out["points"].iloc[0] == 0
    assert out["points"].iloc[1] == pytest.approx(8 * 0.5)
    assert out["lead_id"].tolist() == ["L0", "L0"]


def test_as_of_series_must_match_the_rows():
    with pytest.raises(ValueError, match="one per lead row"):
        score_leads(DEFAULT, leads(2), activities([]), pd.Series([AS_OF]))


# ------------------------------------------------------------------- decay, window, caps


def test_the_same_activity_counts_less_when_older():
    frame = leads(1)
    ages = [0.5, 3, 10, 20, 29]
    points = [points_of(PRICING_ONLY, frame, activities([("L0", "pricing_page_view", a)]))[0] for a in ages]
    assert all(a > b for a, b in zip(points, points[1:], strict=False))
    assert points[2] == pytest.approx(8 * 0.5)  # one half-life


def test_activities_outside_the_window_do_not_count():
    frame = leads(1)
    assert points_of(PRICING_ONLY, frame, activities([("L0", "pricing_page_view", 30.5)]))[0] == 0


def test_no_half_life_means_no_decay():
    acts = activities([("L0", "page_view", 80)], url=["https://x.example/docs/a"])
    assert points_of(PRICING_ONLY, leads(1), acts)[0] == 1


def test_engagement_condition_on_the_url():
    acts = activities(
        [("L0", "page_view", 1), ("L0", "page_view", 1), ("L0", "page_view", 1)],
        url=["https://x.example/docs/a", "https://x.example/blog", None],
    )
    assert points_of(PRICING_ONLY, leads(1), acts)[0] == 1


def test_rule_cap():
    acts = activities([("L0", "pricing_page_view", 0.01)] * 10)
    out = score_leads(PRICING_ONLY, leads(1), acts, AS_OF)
    reason = out["reasons"].iloc[0][0]
    assert reason.impact == 20  # capped, not 10 x 8
    assert reason.value == 10
    assert reason.sentence == "Viewed the pricing page 10 times in the last 30 days"


def test_global_cap_clips_the_total():
    acts = activities(
        [("L0", "pricing_page_view", 0.01)] * 10
        + [("L0", "page_view", 1)] * 40,
        url=["/docs/x"] * 50,
    )
    out = score_leads(PRICING_ONLY, leads(1), acts, AS_OF)
    assert out["points"].iloc[0] == 30
    assert out["probability"].iloc[0] == pytest.approx(1 / (1 + np.exp(-(-2 + 0.1 * 30))))
    # Reasons still show what each rule gave before the global cap.
    assert sum(r.impact for r in out["reasons"].iloc[0]) == pytest.approx(60)


def test_inactivity_counts_from_the_last_touch_or_creation():
    frame = validate_leads(
        pd.DataFrame(
            {
                "lead_id": ["quiet", "new", "active", "unsub_only"],
                "created_at": ["2025-06-01T00:00:00Z", "2026-02-25T00:00:00Z",
                               "2025-06-01T00:00:00Z", "2025-06-01T00:00:00Z"],
            }
        )
    )
    acts = activities(
        [("quiet", "page_view", 50), ("active", "page_view", 3), ("unsub_only", "unsubscribe", 2)]
    )
    ev = evaluate(DEFAULT, frame, acts, AS_OF)
    j = [r.name for r in DEFAULT.rules].index("inactivity")
    assert ev.points[:, j].tolist() == [-10, 0, 0, -10]
    assert ev.values[j].tolist()[:3] == [50, 4, 3]
    reasons = score_leads(DEFAULT, frame, acts, AS_OF)["reasons"].iloc[0]
    assert Reason("inactivity", "Inactivity", 50, -10.0, "No activity for 50 days") in reasons


# ------------------------------------------------------------------------------- reasons


def test_reasons_are_ordered_positive_then_negative_and_limited():
    frame = leads(1, seniority=["Student"], company_size=[200], email=["me@gmail.com"])
    acts = activities(
        [("L0", "demo_request", 1), ("L0", "pricing_page_view", 1), ("L0", "email_click", 2),
         ("L0", "content_download", 1), ("L0", "unsubscribe", 1)]
    )
    reasons = score_leads(DEFAULT, frame, acts, AS_OF, top_reasons=2)["reasons"].iloc[0]
    positive = [r for r in reasons if r.impact > 0]
    negative = [r for r in reasons if r.impact < 0]
    assert reasons == positive + negative
    assert [r.field for r in positive] == ["demo_requests", "company_size"]
    assert [r.field for r in negative] == ["seniority", "unsubscribed"]
    assert positive[0].sentence == "Requested a demo once in the last 60 days"


def test_rules_of_one_field_make_one_reason_and_the_email_never_shows():
    rules = parse_rules(
        DEFAULT.model_dump_json(by_alias=True).replace("competitor.example", "acme.example")
    )
    frame = leads(1, email=["jane.doe@acme.example"])
    reasons = score_leads(rules, frame, activities([]), AS_OF, top_reasons=10)["reasons"].iloc[0]
    domain = [r for r in reasons if r.field == "email_domain"]
    assert len(domain) == 1
    assert domain[0].impact == 5 - 60  # corporate email and competitor, summed like SHAP per field
    assert domain[0].value == "competitor"
    assert domain[0].sentence == "Works at a competitor"
    assert "acme" not in repr(reasons) and "jane" not in repr(reasons)


def test_fit_reason_values_and_sentences():
    frame = leads(2, seniority=["VP Sales", "Manager"], company_size=[120.0, 20.0])
    reasons = score_leads(DEFAULT, frame, activities([]), AS_OF)["reasons"]
    assert Reason("seniority", "Seniority", "VP Sales", 10.0, "Holds a senior role (VP Sales)") in reasons[0]
    size = [r for r in reasons[0] if r.field == "company_size"][0]
    assert size.value == 120 and isinstance(size.value, int)
    assert [r.field for r in reasons[1] if r.impact > 0] == ["seniority"]


def test_email_domain_types():
    frame = leads(4, email=["a@gmail.com", "b@cs.stanford.edu", "c@acme.io", None])
    ev = evaluate(DEFAULT, frame, activities([]), AS_OF)
    names = [r.name for r in DEFAULT.rules]
    fired = {names[j] for j in range(len(names)) if ev.points[0, j]}
    assert "free_mail" in fired
    assert ev.points[1, names.index("education_email")] == -15
    assert ev.points[2, names.index("corporate_email")] == 5
    assert not ev.points[3, [names.index(n) for n in ("free_mail", "corporate_email", "education_email")]].any()


def test_every_fired_rule_is_explained_with_top_none():
    frame = leads(1, seniority=["Director"], company_size=[300], email=["x@acme.io"])
    acts = activities([("L0", t, 1) for t in ("pricing_page_view", "demo_request", "webinar_attended",
                                               "content_download", "email_click", "trial_signup")])
    ev = evaluate(DEFAULT, frame, acts, AS_OF)
    table = ev.reason_table(top=None)
    assert len(table) == int((ev.points[0] != 0).sum())
    assert table["impact"].sum() == pytest.approx(ev.points[0].sum(), abs=1e-2)


# --------------------------------------------------------------- naive reference comparison


def naive_engagement(rule, lead_ids, acts, as_of):
    out = {}
    for lead in lead_ids:
        total = 0.0
        count = 0
        for _, a in acts[acts["lead_id"] == lead].iterrows():
            age = (as_of - a["occurred_at"]) / pd.Timedelta(days=1)
            if a["type"] == rule.activity and 0 < age < rule.window_days:
                decay = 1.0 if rule.half_life_days is None else 0.5 ** (age / rule.half_life_days)
                total += rule.points * decay
                count += 1
        out[lead] = (max(-rule.cap, min(rule.cap, total)), count)
    return out


def test_matches_a_naive_reference_on_random_data():
    rng = np.random.default_rng(7)
    n = 40
    frame = leads(n)
    rows = [
        (f"L{rng.integers(n)}", str(rng.choice(ACTIVITY_TYPES)), float(rng.uniform(-5, 100)))
        for _ in range(600)
    ]
    acts = activities(rows)
    ev = evaluate(DEFAULT, frame, acts, AS_OF)
    for j, rule in enumerate(DEFAULT.rules):
        if rule.kind != "engagement":
            continue
        expected = naive_engagement(rule, frame["lead_id"], acts, AS_OF)
        for i, lead in enumerate(frame["lead_id"]):
            assert ev.points[i, j] == pytest.approx(expected[lead][0]), (rule.name, lead)
            assert ev.values[j][i] == expected[lead][1]


# ----------------------------------------------------------------------------- properties

POSITIVE_TYPES = sorted({r.activity for r in DEFAULT.engagement_rules} | {"page_view", "email_open"})
NEGATIVE_TYPES = sorted({r.activity for r in DEFAULT.negative_rules if r.kind == "engagement"})
SENIORITY = ["VP", "Manager", "Student", "Analyst", None]

activity_rows = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(list(ACTIVITY_TYPES)), st.floats(-3, 120)),
    max_size=40,
)


@st.composite
def scenario(draw):
    n = 5
    frame = leads(
        n,
        seniority=[draw(st.sampled_from(SENIORITY)) for _ in range(n)],
        company_size=[draw(st.sampled_from([5.0, 100.0, None])) for _ in range(n)],
        created_at=[
            (AS_OF - pd.Timedelta(days=draw(st.floats(0.5, 200)))).isoformat() for _ in range(n)
        ],
    )
    rows = [(f"L{i}", t, age) for i, t, age in draw(activity_rows)]
    return frame, rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.sampled_from(POSITIVE_TYPES), st.floats(0.001, 120))
def test_one_more_positive_activity_never_lowers_a_score(case, kind, age):
    frame, rows = case
    before = score_leads(DEFAULT, frame, activities(rows), AS_OF, reasons=False)
    more = rows + [(f"L{i}", kind, age) for i in range(len(frame))]
    after = score_leads(DEFAULT, frame, activities(more), AS_OF, reasons=False)
    assert (after["points"].to_numpy() >= before["points"].to_numpy() - 1e-9).all()
    assert (after["score"].to_numpy() >= before["score"].to_numpy()).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.sampled_from(NEGATIVE_TYPES), st.floats(0.001, 120))
def test_one_more_negative_activity_never_raises_a_score(case, kind, age):
    frame, rows = case
    before = score_leads(DEFAULT, frame, activities(rows), AS_OF, reasons=False)
    more = rows + [(f"L{i}", kind, age) for i in range(len(frame))]
    after = score_leads(DEFAULT, frame, activities(more), AS_OF, reasons=False)
    assert (after["points"].to_numpy() <= before["points"].to_numpy() + 1e-9).all()
    assert (after["score"].to_numpy() <= before["score"].to_numpy()).all()


@settings(max_examples=40, deadline=None)
@given(scenario(), st.floats(0.01, 25))
def test_older_is_never_worth_more(case, shift):
    frame, rows = case
    older = [(lead, t, age + shift) for lead, t, age in rows if age > 0.001]
    newer = [(lead, t, age) for lead, t, age in rows if age > 0.001]
    positive_only = [r for r in newer if r[1] not in NEGATIVE_TYPES]
    positive_older = [r for r in older if r[1] not in NEGATIVE_TYPES]
    # Engagement rules only: with inactivity, "older" also means "quiet for longer".
    rules = parse_rules(
        DEFAULT.model_copy(update={"fit_rules": [], "negative_rules": []}).model_dump_json(by_alias=True)
    )
    a = points_of(rules, frame, activities(positive_only))
    b = points_of(rules, frame, activities(positive_older))
    assert (b <= a + 1e-9).all()


def test_reasons_column_holds_lists_even_when_all_have_the_same_length():
    out = score_leads(DEFAULT, leads(3, seniority=["VP"] * 3), activities([]), AS_OF, top_reasons=1)
    assert out["reasons"].map(type).eq(list).all()
    assert out["reasons"].map(len).eq(2).all()


CASE_RULES = parse_rules(
    """
version: "t"
fit_rules:
  - {name: software, field: industry, label: Industry, points: 6,
     when: {field: industry, equals: Software}, sentence: "Works in software"}
  - {name: target_country, field: country, label: Country, points: 3,
     when: {field: country, in: [us, GB]}, sentence: "Based in a target country"}
  - {name: senior, field: seniority, label: Seniority, points: 10,
     when: {field: seniority, regex: '^(?:vp|director)'}, sentence: "Senior ({value})"}
mapping: {max_points: 30, min_points: -30, intercept: -2, slope: 0.1}
grading: {a: 60, b: 30, c: 10}
"""
)


@pytest.mark.parametrize("rules", [DEFAULT, CASE_RULES], ids=["default", "equals-in-regex"])
def test_case_and_surrounding_whitespace_change_no_rules_score(rules):
    spellings = [
        ("software", "us", "director", "a@acme.io"),
        ("Software", "US", "Director", "a@Acme.IO"),
        ("  SOFTWARE\t", " Us ", " DIRECTOR ", " A@ACME.io "),
    ]
    frame = leads(3, industry=[s[0] for s in spellings], country=[s[1] for s in spellings],
                  seniority=[s[2] for s in spellings], email=[s[3] for s in spellings])
    out = score_leads(rules, frame, activities([]), AS_OF)
    assert out["points"].iloc[0] > 0
    assert out["points"].nunique() == 1 and out["score"].nunique() == 1, out
    assert {len(r) for r in out["reasons"]} == {len(out["reasons"].iloc[0])}
