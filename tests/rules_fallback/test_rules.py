"""Loading rule files: the default is valid, and every kind of broken file is rejected
with a message that names the rule, the key, the value and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import RulesError
from features.grading import Grading
from rules_fallback import DEFAULT_RULES_PATH, RuleSet, load_rules, parse_rules

DEFAULT = DEFAULT_RULES_PATH.read_text()

MINIMAL = """\
version: "t1"
engagement_rules:
  - name: pricing_page_visits
    field: pricing_page_visits
    label: Pricing page visits
    activity: pricing_page_view
    points: 5
    cap: 20
    window_days: 30
    half_life_days: 10
    sentence: "Viewed the pricing page {times} in the last {window_days} days"
grading: {a: 50, b: 25, c: 10}
"""


def rejected(text: str) -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(text, source="bad.yaml")
    return str(info.value)


def test_default_rules_load_with_every_business_field():
    rules = load_rules()
    assert isinstance(rules, RuleSet)
    assert isinstance(rules.grading, Grading)
    fields = {rule.field for rule in rules.rules}
    assert {
        "pricing_page_visits", "demo_requests", "webinar_attendance", "content_downloads",
        "email_clicks", "seniority", "company_size", "email_domain", "inactivity", "unsubscribed",
    } <= fields
    assert rules.provenance.startswith(rules.version + "+")


def test_every_default_rule_has_a_comment_saying_why():
    lines = DEFAULT.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  - name: "):
            assert lines[i - 1].lstrip().startswith("#"), f"no comment above {line.strip()}"


def test_hash_ignores_comments_but_not_content():
    rules = parse_rules(MINIMAL)
    assert parse_rules("# a comment\n" + MINIMAL).hash == rules.hash
    assert parse_rules(MINIMAL.replace("points: 5", "points: 6")).hash != rules.hash


def test_load_rules_reads_a_path(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text(MINIMAL)
    assert load_rules(path).version == "t1"
    assert load_rules(str(path)).version == "t1"


def test_missing_file_names_the_path(tmp_path: Path):
    with pytest.raises(RulesError, match="cannot read rules file .*nope.yaml"):
        load_rules(tmp_path / "nope.yaml")


def test_bad_yaml_syntax_gives_the_line():
    message = rejected(MINIMAL.replace("  - name: pricing_page_visits", "  - name: [oops"))
    assert "not valid YAML at line 4" in message
    assert "flow sequence at line 3" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # unknown key
        ("    cap: 20\n", "    cap: 20\n    capp: 3\n", ["'pricing_page_visits'", "capp", "line 9", "unknown key"]),
        # wrong type
        ("points: 5", "points: lots", ["'pricing_page_visits'", "key points", "line 7", "'lots'"]),
        # negative half-life
        ("half_life_days: 10", "half_life_days: -3", ["half_life_days", "line 10", "greater than 0", "-3"]),
        # zero window
        ("window_days: 30", "window_days: 0", ["window_days", "greater than 0"]),
        # unknown activity type
        ("activity: pricing_page_view", "activity: pricing_view", ["'pricing_page_visits'", "key activity", "line 6", "unknown activity type 'pricing_view'"]),
        # points of the wrong sign in a positive section
        ("points: 5", "points: -5", ["key points", "line 7", "must add points", "negative_rules"]),
        # missing key
        ("    cap: 20\n", "", ["'pricing_page_visits'", "key cap", "is required"]),
        # unknown placeholder in the sentence
        ("{times}", "{count_}", ["key sentence", "unknown placeholder", "count_"]),
        # not snake_case name
        ("name: pricing_page_visits", "name: Pricing Visits", ["key name", "line 3", "'Pricing Visits'"]),
        # unknown top-level key
        ('version: "t1"\n', 'version: "t1"\nrulez: []\n', ["key rulez", "line 2", "unknown key"]),
        # non-monotone grade thresholds
        ("grading: {a: 50, b: 25, c: 10}", "grading: {a: 20, b: 25, c: 10}", ["key grading", "line 12", "a > b > c", "a=20"]),
        # grade threshold outside 0-100
        ("grading: {a: 50, b: 25, c: 10}", "grading: {a: 150, b: 25, c: 10}", ["grading.a", "150"]),
        # unknown sales grade
        ("grading: {a: 50, b: 25, c: 10}", "grading: {a: 50, b: 25, c: 10, sales_grades: [A, E]}", ["sales_grades", "'E'"]),
        # bad mapping
        ("grading:", "mapping: {slope: -1}\ngrading:", ["mapping.slope", "greater than 0", "-1"]),
        # missing grading
        ("grading: {a: 50, b: 25, c: 10}\n", "", ["key grading", "is required"]),
    ],
)
def test_invalid_files_name_rule_key_value_and_line(old: str, new: str, expected: list[str]):
    assert old in MINIMAL
    message = rejected(MINIMAL.replace(old, new))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def fit_rule(when: str, points: float = 5, name: str = "fit_one", extra: str = "") -> str:
    return (
        f"  - name: {name}\n    field: seniority\n    label: Seniority\n    when: {when}\n"
        f"    points: {points}\n    sentence: \"Is {{value}}\"\n{extra}"
    )


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{field: seniority, regex: 'vp(|x'}", ["'fit_one'", "when.0.regex", "not a valid regular expression"]),
        ("{field: senority, equals: vp}", ["unknown lead field 'senority'"]),
        ("{field: email, equals: a@b.c}", ["personal data", "email_domain_type"]),
        ("{field: seniority, equals: vp, in: [vp]}", ["exactly one operator", "['equals', 'in']"]),
        ("{field: seniority}", ["exactly one operator", "none"]),
        ("{field: company_size, range: {min: 10, max: 5}}", ["min < max"]),
        ("{field: company_size, range: {}}", ["at least one of 'min' and 'max'"]),
        ("{field: industry, range: {min: 1}}", ["numeric field"]),
        ("{field: company_size, equals: big}", ["'company_size' is a number", "'big'"]),
        ("{field: seniority, in: []}", ["when.0.in", "at least 1"]),
        ("[]", ["key when", "at least 1"]),
    ],
)
def test_invalid_conditions(when: str, expected: list[str]):
    text = MINIMAL.replace("engagement_rules:", "fit_rules:\n" + fit_rule(when) + "engagement_rules:")
    message = rejected(text)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_the_line_points_at_the_broken_rule():
    text = MINIMAL.replace(
        "engagement_rules:",
        "fit_rules:\n" + fit_rule("{field: seniority, equals: vp}")
        + fit_rule("{field: seniority, regex: '('}", name="fit_two") + "engagement_rules:",
    )
    message = rejected(text)
    assert "rule 'fit_two' (fit_rules[1])" in message
    line = text.splitlines().index("    when: {field: seniority, regex: '('}") + 1
    assert f"line {line}" in message


def test_duplicate_rule_names_are_rejected_across_sections():
    text = MINIMAL.replace(
        "engagement_rules:",
        "fit_rules:\n" + fit_rule("{field: seniority, equals: vp}", name="pricing_page_visits")
        + "engagement_rules:",
    )
    message = rejected(text)
    assert "'pricing_page_visits' is used twice (first at fit_rules[0])" in message
    assert "engagement_rules[0]" in message


def test_negative_rules_must_take_points_away():
    text = MINIMAL.replace(
        "grading:", "negative_rules:\n" + fit_rule("{field: seniority, equals: student}", 5) + "grading:"
    )
    message = rejected(text)
    assert "rule 'fit_one' (negative_rules[0]), key points" in message
    assert "take points away" in message


def test_inactivity_must_not_count_penalised_activities():
    text = MINIMAL.replace(
        "grading:",
        "negative_rules:\n"
        "  - {name: unsub, field: unsubscribed, label: Unsubscribed, activity: unsubscribe, points: -9, cap: 9, window_days: 99, sentence: Unsubscribed}\n"
        "  - {name: quiet, field: inactivity, label: Inactivity, inactive_days: 30, points: -5, sentence: 'Quiet', ignore_activities: []}\n"
        "grading:",
    )
    message = rejected(text)
    assert "rule 'quiet' (negative_rules[1]), key ignore_activities" in message
    assert "['unsubscribe']" in message


def test_custom_activity_types_must_be_declared():
    text = MINIMAL.replace("activity: pricing_page_view", "activity: sample_request")
    assert "unknown activity type 'sample_request'" in rejected(text)
    declared = parse_rules(text.replace('version: "t1"\n', 'version: "t1"\ncustom_activities: [sample_request]\n'))
    assert declared.engagement_rules[0].activity == "sample_request"


def test_email_domain_rules_must_not_show_the_domain():
    text = MINIMAL.replace(
        "engagement_rules:",
        "fit_rules:\n" + fit_rule("{field: email_domain, in: [rival.example]}") + "engagement_rules:",
    )
    assert "needs a 'value' to show instead of the domain" in rejected(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "expected a mapping"),
        ('version: "1"\ngrading: {a: 50, b: 20, c: 5}\n', "the rule set has no rules"),
        ('version: "1"\nfit_rules: []\ngrading: {a: 50, b: 20, c: 5}\n', "the rule set has no rules"),
    ],
)
def test_empty_files_and_empty_rule_sets(text: str, expected: str):
    assert expected in rejected(text)


def test_every_problem_is_reported_at_once():
    text = MINIMAL.replace("points: 5", "points: lots").replace("cap: 20", "cap: -1")
    message = rejected(text)
    assert "2 problems" in message
    assert "key points" in message and "key cap" in message
