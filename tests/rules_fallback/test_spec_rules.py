"""Rules files for a dataset spec: checked against its fields and kinds, and spec leads scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import RulesError
from features.reasons import Reason
from features.spec import load_spec, load_tables
from rules_fallback import load_rules
from rules_fallback.spec_rules import (
    SpecVocabulary,
    load_spec_rules,
    parse_spec_rules,
    score_spec_leads,
)
from tests.rules_fallback.spec_fixtures import write_flat_spec, write_time_spec

RULES = """\
version: t1
dataset: tiny
fit_rules:
  - name: referral
    field: lead_source
    label: Lead source
    when: {field: lead_source, equals: referral}
    points: 20
    sentence: "Lead source: {value}"
  - name: many_visits
    field: visits
    label: Website visits
    when: {field: visits, range: {min: 10}}
    points: 5
    sentence: "Website visits: {value}"
engagement_rules:
  - name: demo
    field: kind_demo
    label: Demo
    activity: demo
    points: 15
    cap: 30
    window_days: 30
    sentence: "Asked for a demo {times} in the last {window_days} days"
negative_rules:
  - name: unsubscribed
    field: kind_unsubscribe
    label: Unsubscribe
    activity: unsubscribe
    points: -25
    cap: 25
    window_days: 365
    sentence: "Unsubscribed {times}"
  - name: quiet
    field: inactivity
    label: Inactivity
    inactive_days: 30
    ignore_activities: [unsubscribe]
    points: -5
    sentence: "No activity for {days} days"
grading: {a: 60, b: 40, c: 20}
"""


@pytest.fixture
def tiny(tmp_path: Path):
    spec = load_spec(write_time_spec(tmp_path / "tiny"))
    return spec, load_tables(spec), SpecVocabulary.from_spec(spec)


def test_vocabulary_names_fields_by_safe_name_and_keeps_pii_and_kinds_apart(tiny):
    _, tables, vocabulary = tiny
    assert vocabulary.fit_fields == ("lead_source", "industry", "visits", "lead_age_days")
    assert vocabulary.original_names["lead_source"] == "Lead Source"
    assert vocabulary.pii == {"email": "Email"}
    assert list(vocabulary.kinds) == ["demo", "email_open", "unsubscribe"]
    # The same names the loader gives the frames.
    assert set(vocabulary.categorical) == set(tables.categorical)
    assert set(vocabulary.numeric) == set(tables.numeric)


def test_a_valid_spec_rules_file_is_accepted(tiny):
    rules = parse_spec_rules(RULES, tiny[2])
    assert [r.name for r in rules.rules] == ["referral", "many_visits", "demo", "unsubscribed",
                                             "quiet"]


def _with(old: str, new: str) -> str:
    assert old in RULES
    return RULES.replace(old, new, 1)


def test_an_unknown_field_names_the_rule_field_value_expected_fields_and_a_suggestion(tiny):
    text = _with("when: {field: lead_source, equals: referral}",
                 "when: {field: lead_sorce, equals: referral}")
    with pytest.raises(RulesError) as info:
        parse_spec_rules(text, tiny[2], source="r.yaml")
    message = str(info.value)
    assert "rule 'referral' (fit_rules[0])" in message
    assert "'lead_sorce'" in message and "equals 'referral'" in message
    assert "expected one of ['lead_source', 'industry', 'visits', 'lead_age_days']" in message
    assert "did you mean 'lead_source'?" in message
    assert "line 7" in message
    assert "spec 'tiny'" in message


def test_a_crm_column_name_is_refused_with_the_safe_name_to_write(tiny):
    text = _with("when: {field: lead_source, equals: referral}",
                 "when: {field: Lead Source, equals: referral}")
    with pytest.raises(RulesError, match=r"'Lead Source' is the CRM's column, which rules name "
                                         r"'lead_source'"):
        parse_spec_rules(text, tiny[2])


def test_pii_is_never_a_rules_field(tiny):
    text = _with("when: {field: visits, range: {min: 10}}",
                 "when: {field: email, regex: 'example'}")
    with pytest.raises(RulesError, match=r"field 'email' is a pii column .* never a rules field"):
        parse_spec_rules(text, tiny[2])


def test_unknown_kinds_wrong_operators_and_other_specs_are_all_reported(tiny):
    text = (_with("activity: demo", "activity: demos")
            .replace("when: {field: visits, range: {min: 10}}",
                     "when: {field: lead_source, range: {min: 10}}")
            .replace("dataset: tiny", "dataset: other"))
    with pytest.raises(RulesError) as info:
        parse_spec_rules(text, tiny[2])
    message = str(info.value)
    assert "3 problems" in message
    assert ("rule 'demo' (engagement_rules[0]), key activity, line 20: activity 'demos' is "
            "not a kind of spec 'tiny'; expected one of ['demo', 'email_open', 'unsubscribe']; "
            "did you mean 'demo'?") in message
    assert "'range' needs a numeric field; 'lead_source' is a category" in message
    assert "written for spec 'other'" in message


def test_the_sign_contract_still_holds_for_spec_rules(tiny):
    with pytest.raises(RulesError, match="must add points"):
        parse_spec_rules(_with("points: 15", "points: -15"), tiny[2])
    with pytest.raises(RulesError, match=r"counts \['unsubscribe'\] as engagement"):
        parse_spec_rules(_with("ignore_activities: [unsubscribe]", "ignore_activities: []"),
                         tiny[2])


def test_a_spec_without_time_or_activities_refuses_inactivity_and_kinds(tmp_path: Path):
    vocabulary = SpecVocabulary.from_spec(load_spec(write_flat_spec(tmp_path / "flat")))
    text = RULES.replace("dataset: tiny", "dataset: flat").replace("field: visits",
                                                                  "field: total_visits")
    with pytest.raises(RulesError) as info:
        parse_spec_rules(text, vocabulary)
    message = str(info.value)
    assert "spec 'flat' has no activities table; activity 'demo' cannot be counted" in message
    assert "spec 'flat' has no created_at, so inactivity cannot be measured" in message


def test_the_built_in_contract_still_refuses_spec_fields(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text(RULES.replace("dataset: tiny\n", ""), encoding="utf-8")
    with pytest.raises(RulesError, match="unknown lead field 'lead_source'"):
        load_rules(path)


def test_scoring_spec_leads_gives_the_engines_shape_with_the_specs_words(tiny):
    _, tables, vocabulary = tiny
    rules = parse_spec_rules(RULES, vocabulary)
    as_of = pd.Timestamp("2026-02-15", tz="UTC")
    out = score_spec_leads(rules, tables.leads, tables.activities, as_of)
    assert list(out.columns) == ["lead_id", "points", "probability", "score", "grade", "route",
                                 "reasons"]
    assert len(out) == len(tables.leads)
    leads = tables.leads.reset_index(drop=True)
    # Case-insensitive matching of a spec's categorical ("Referral" in the data).
    referral = leads["lead_source"].eq("Referral").to_numpy()
    assert referral.any()
    for reasons, is_referral in zip(out["reasons"], referral, strict=True):
        assert all(isinstance(r, Reason) for r in reasons)
        fields = {r.field: r for r in reasons}
        assert ("lead_source" in fields) == bool(is_referral)
        if is_referral:
            assert fields["lead_source"].sentence == "Lead source: Referral"
            assert fields["lead_source"].label == "Lead source"
    # Demo counts are point in time: only requests strictly before as_of, within 30 days.
    acts = tables.activities
    age = as_of - acts["occurred_at"]
    window = (age > pd.Timedelta(0)) & (age < pd.Timedelta(days=30))
    before = acts[(acts["type"] == "demo") & window]["lead_id"]
    demo_reason = out["reasons"].map(lambda rs: any(r.field == "kind_demo" for r in rs))
    assert set(out.loc[demo_reason, "lead_id"]) == set(before)
    said = [r.sentence for rs in out["reasons"] for r in rs if r.field == "kind_demo"]
    assert "Asked for a demo once in the last 30 days" in said


def test_score_spec_leads_without_activities_and_with_one_as_of_per_row(tmp_path: Path):
    spec = load_spec(write_flat_spec(tmp_path / "flat"))
    tables = load_tables(spec)
    rules = parse_spec_rules(
        "version: f\nfit_rules:\n"
        "  - {name: ref, field: lead_source, label: Lead source, points: 9,\n"
        "     when: {field: lead_source, in: [reference]}, sentence: 'Lead source: {value}'}\n"
        "grading: {a: 60, b: 40, c: 20}\n",
        SpecVocabulary.from_spec(spec),
    )
    as_of = pd.Series(pd.Timestamp("2026-01-01", tz="UTC"), index=range(len(tables.leads)))
    out = score_spec_leads(rules, tables.leads, None, as_of)
    expected = np.where(tables.leads["lead_source"].eq("Reference"), 9.0, 0.0)
    np.testing.assert_array_equal(out["points"].to_numpy(), expected)


def test_spec_scoring_checks_its_frames(tiny):
    _, tables, vocabulary = tiny
    rules = parse_spec_rules(RULES, vocabulary)
    with pytest.raises(ValueError, match="activities has no 'type' column"):
        score_spec_leads(rules, tables.leads, tables.activities.drop(columns="type"),
                         pd.Timestamp("2026-02-01", tz="UTC"))
    with pytest.raises(ValueError, match="leads has no 'created_at'"):
        score_spec_leads(rules, tables.leads.drop(columns="created_at"), tables.activities,
                         pd.Timestamp("2026-02-01", tz="UTC"))


def test_load_spec_rules_reads_a_file_and_names_it(tiny, tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(_with("activity: demo", "activity: demos"), encoding="utf-8")
    with pytest.raises(RulesError, match=rf"^{path}: 1 problem in the rules file for spec 'tiny'"):
        load_spec_rules(path, tiny[2])


def test_a_crm_column_as_a_rules_field_says_what_rules_call_it(tiny):
    _, _, vocabulary = tiny
    text = RULES.replace("    field: lead_source\n", "    field: Lead Source\n", 1)
    with pytest.raises(RulesError) as err:
        parse_spec_rules(text, vocabulary)
    message = " ".join(str(err.value).split())
    assert "rule 'referral' (fit_rules[0]), key field" in message
    assert "'Lead Source' is the CRM's column, which rules name 'lead_source'" in message
    assert "expected one of ['lead_source', 'industry', 'visits', 'lead_age_days']" in message
