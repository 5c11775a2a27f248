"""Starter rules for a spec (``rules init``): lift, shrinkage, monotonicity, and the real exports."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.spec import example_spec_path, load_spec, load_tables
from leadscore.cli import app
from rules_fallback.engine import evaluate
from rules_fallback.init import generate_rules, lift_table, shrunk_points
from rules_fallback.spec_rules import (
    SpecVocabulary,
    evaluate_spec,
    parse_spec_rules,
    score_spec_leads,
)
from tests.rules_fallback.spec_fixtures import write_flat_spec, write_time_spec

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
XEDU = REPO.parent / "shared" / "data" / "x-education" / "Leads.csv"
OULAD = REPO.parent / "shared" / "data" / "oulad"


def naive_points(k: int, n: int, p0: float, m: float) -> float:
    rate = (k + m * p0) / (n + m)
    return 10 * (math.log(rate / (1 - rate)) - math.log(p0 / (1 - p0)))


def test_lift_table_matches_a_naive_count_per_value():
    values = pd.Series(["Web", "web ", "Ads", None, "Referral", "Ads", "Web", "Ads", "Referral"],
                       dtype="string")
    labels = [1, 0, 0, 1, 1, 0, 1, 1, 1]
    table = lift_table(values, labels, prior_strength=4).set_index("key")
    p0 = sum(labels) / len(labels)  # the base rate counts the lead with no value too
    expected = {}
    for v, y in zip(values, labels, strict=True):
        if v is None or v is pd.NA:
            continue
        key = v.strip().lower()
        n, k = expected.get(key, (0, 0))
        expected[key] = (n + 1, k + y)
    assert set(table.index) == set(expected)
    for key, (n, k) in expected.items():
        assert table.loc[key, "n"] == n
        assert table.loc[key, "conversions"] == k
        assert table.loc[key, "points"] == pytest.approx(naive_points(k, n, p0, 4))
    # The most frequent spelling is shown, the most frequent value comes first.
    assert table.loc["web", "value"] == "Web"
    assert list(table.index[:2]) == ["ads", "web"]


def test_a_value_seen_twice_gets_points_near_zero_and_a_common_one_keeps_its_lift():
    p0 = 0.3
    twice = float(shrunk_points(2, 2, p0))
    common = float(shrunk_points(1000, 1000 * 1, p0))
    # A raw rate of 100% would be infinitely many points; shrunk, two conversions out of
    # two are worth under 3 points, a twentieth of the same rate seen a thousand times.
    assert 0 < twice < 3
    assert common > 40 and twice < common / 15
    # Same rate, more evidence, more points; with no prior the raw weight of evidence.
    assert shrunk_points(10, 20, p0) < shrunk_points(100, 200, p0)
    assert float(shrunk_points(10, 20, p0, prior_strength=1e-9)) == pytest.approx(
        10 * (math.log(1) - math.log(p0 / (1 - p0))), rel=1e-6)
    with pytest.raises(ValueError, match="'base_rate' parameter of shrunk_points"):
        shrunk_points(1, 2, 0.0)


def _examples(tables, offset_days: int, horizon_days: int = 30) -> pd.DataFrame:
    """Snapshots at created_at + offset of leads still open then, labelled by the horizon."""
    leads = tables.leads
    as_of = leads["created_at"] + pd.Timedelta(days=offset_days)
    open_ = ~(leads["converted_at"] < as_of)
    won = (leads["converted_at"] >= as_of) & (
        leads["converted_at"] < as_of + pd.Timedelta(days=horizon_days))
    return pd.DataFrame({"lead_id": leads["lead_id"], "as_of": as_of,
                         "label": won.astype(int)})[open_.to_numpy()].reset_index(drop=True)


@pytest.fixture(scope="module")
def tiny_tables(tmp_path_factory):
    spec = load_spec(write_time_spec(tmp_path_factory.mktemp("tiny")))
    return SpecVocabulary.from_spec(spec), load_tables(spec)


def test_generated_rules_learn_the_planted_effects_and_parse(tiny_tables):
    vocabulary, tables = tiny_tables
    generated = generate_rules(vocabulary, tables.leads, tables.activities,
                               _examples(tables, 10), window_days=30)
    rules = generated.rules
    by_name = {r.name: r for r in rules.rules}
    assert by_name["lead_source_referral"].points > 5
    assert by_name["demo_any"].points > 5
    assert "lead_source_referral" in {r.name for r in rules.fit_rules}
    assert all(r.points > 0 for r in [*rules.fit_rules, *rules.engagement_rules])
    assert all(r.points < 0 for r in rules.negative_rules)
    # The file says where each number comes from, and round-trips through the checker.
    assert "# Lead source (CRM column 'Lead Source') = 'Referral'" in generated.text
    assert "m = 20 pseudo-examples" in generated.text
    assert parse_spec_rules(generated.text, vocabulary).hash == rules.hash
    assert generated.summary["roc_auc"] > 0.7
    # 'Software' and 'software ' are one value, as the engine matches them.
    assert not any("software_2" in r.name for r in rules.rules)


def test_points_of_a_kind_come_from_what_was_known_at_as_of(tiny_tables):
    vocabulary, tables = tiny_tables
    examples = _examples(tables, 10)
    generated = generate_rules(vocabulary, tables.leads, tables.activities, examples,
                               window_days=30)
    demo = next(r for r in generated.rules.rules if r.name == "demo_any")
    by_id = tables.leads.set_index("lead_id")
    acts = tables.activities
    did = []
    for row in examples.itertuples():
        age = row.as_of - acts.loc[(acts["lead_id"] == row.lead_id) & (acts["type"] == "demo"),
                                   "occurred_at"]
        did.append(bool(((age > pd.Timedelta(0)) & (age < pd.Timedelta(days=30))).any()))
    did = np.asarray(did)
    y = examples["label"].to_numpy()
    expected = round(naive_points(int(y[did].sum()), int(did.sum()), y.mean(), 20), 1)
    assert demo.points == pytest.approx(expected)
    assert len(by_id)  # (the frame is the loader's)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), offset=st.integers(3, 25), pick=st.integers(0, 10**6),
       back=st.floats(0.01, 40))
def test_generated_rules_keep_the_engines_monotonicity(tmp_path_factory, seed, offset, pick, back):
    """One more activity of a kind with positive rules never lowers a score; of a kind with
    negative rules never raises it; of any other kind, never lowers it (it can only end a
    quiet spell)."""
    spec = load_spec(write_time_spec(tmp_path_factory.mktemp("mono"), n=80, seed=seed))
    tables = load_tables(spec)
    vocabulary = SpecVocabulary.from_spec(spec)
    examples = _examples(tables, offset)
    if examples["label"].nunique() < 2:
        return
    rules = generate_rules(vocabulary, tables.leads, tables.activities, examples).rules
    leads = tables.leads.set_index("lead_id").loc[examples["lead_id"]].reset_index()
    i = pick % len(leads)
    lead = leads.iloc[[i]].reset_index(drop=True)
    as_of = examples["as_of"].iloc[[i]].reset_index(drop=True)
    acts = tables.activities[tables.activities["lead_id"] == lead["lead_id"].iloc[0]]
    before = evaluate_spec(rules, lead, acts, as_of).total[0]
    for kind in vocabulary.kinds:
        extra = pd.DataFrame({"lead_id": pd.array([lead["lead_id"].iloc[0]], dtype="string"),
                              "occurred_at": as_of - pd.Timedelta(days=back),
                              "type": pd.array([kind], dtype="string")})
        after = evaluate_spec(rules, lead, pd.concat([acts, extra], ignore_index=True),
                              as_of).total[0]
        signs = {np.sign(r.points) for r in rules.rules if getattr(r, "activity", None) == kind}
        if signs == {-1.0}:
            assert after <= before
        else:
            assert signs <= {1.0}
            assert after >= before


def test_without_labels_the_kinds_get_neutral_points_from_their_weight(tiny_tables):
    vocabulary, tables = tiny_tables
    generated = generate_rules(vocabulary, tables.leads, tables.activities, None)
    rules = {r.activity: r for r in generated.rules.engagement_rules}
    assert set(rules) == {"demo", "email_open"}  # unsubscribe has weight 0
    assert rules["demo"].points == 15 and rules["email_open"].points == 5
    assert rules["demo"].half_life_days == 14 and rules["demo"].cap == 45
    assert generated.rules.fit_rules == [] and generated.summary["roc_auc"] is None
    assert "No labels" in generated.text


def test_rules_init_check_and_score_through_the_cli(tmp_path: Path):
    spec = write_time_spec(tmp_path / "tiny")
    rules = tmp_path / "rules.yaml"
    result = runner.invoke(app, ["rules", "init", "--dataset", str(spec), "--out", str(rules)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {rules}: ")
    assert "for spec 'tiny', learned from " in result.stdout
    again = runner.invoke(app, ["rules", "init", "--dataset", str(spec), "--out", str(rules)])
    assert again.exit_code != 0 and "pass --force" in again.output

    checked = runner.invoke(app, ["rules", "check", "--dataset", str(spec), str(rules)])
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(f"OK {rules}: ") and "for spec 'tiny'" in checked.stdout
    # Against the built-in contract (no --dataset) the same file is not valid.
    builtin = runner.invoke(app, ["rules", "check", str(rules)])
    assert builtin.exit_code == 2 and "unknown key" in builtin.output

    out = tmp_path / "scores.parquet"
    scored = runner.invoke(app, ["rules", "score", "--dataset", str(spec), "--rules", str(rules),
                                 "--as-of", "2026-02-20T00:00:00Z", "--out", str(out)])
    assert scored.exit_code == 0, scored.output
    assert scored.stdout.startswith("scored 120 leads as of 2026-02-20T00:00:00+00:00 with rules ")
    table = pq.read_table(out).to_pandas()
    assert len(table) == 120 and set(table["scored_by"]) == {"rules"}
    reasons = [r for rs in table["reasons"] for r in rs]
    assert {"label": "Lead source", "sentence": "Lead source: Referral"}.items() <= next(
        r for r in reasons if r["field"] == "lead_source" and r["value"] == "Referral").items()
    assert any(r["sentence"].startswith("Asked for a demo ") for r in reasons)


def test_rules_check_refuses_a_field_the_spec_lacks_through_the_cli(tmp_path: Path):
    spec = write_flat_spec(tmp_path / "flat")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: x\nfit_rules:\n"
        "  - {name: source, field: lead_source, label: Lead source, points: 9,\n"
        "     when: {field: Lead Sorce, equals: Reference}, sentence: 'Lead source: {value}'}\n"
        "grading: {a: 60, b: 40, c: 20}\n", encoding="utf-8")
    result = runner.invoke(app, ["rules", "check", "--dataset", str(spec), str(rules)])
    assert result.exit_code == 2
    # One line per problem, whatever the terminal's width.
    line = next(x for x in result.output.splitlines() if "rule 'source'" in x)
    assert ("rule 'source' (fit_rules[0]), key when.0.field, line 4: lead field 'Lead Sorce' "
            "is not a field of spec 'flat'; expected one of ['lead_source', 'total_visits']; "
            "did you mean 'lead_source'? (condition equals 'Reference')") in line


def test_rules_init_on_a_flat_spec_learns_fit_rules_only(tmp_path: Path):
    spec = write_flat_spec(tmp_path / "flat")
    rules = tmp_path / "rules.yaml"
    result = runner.invoke(app, ["rules", "init", "--dataset", str(spec), "--out", str(rules)])
    assert result.exit_code == 0, result.output
    text = rules.read_text(encoding="utf-8")
    assert "phone" not in text.lower()  # pii is never a rules field
    assert "equals: \"Reference\"" in text and "range: {min: " in text


def _holdout_auc(vocabulary, tables, train, test) -> tuple[float, float]:
    generated = generate_rules(vocabulary, tables.leads, tables.activities, train)
    leads = tables.leads.set_index("lead_id").loc[test["lead_id"]].reset_index()
    as_of = (test["as_of"].reset_index(drop=True) if "as_of" in test.columns
             else pd.Timestamp("2000-01-01", tz="UTC"))
    total = evaluate_spec(generated.rules, leads, tables.activities, as_of).total
    return generated.summary["roc_auc"], float(roc_auc_score(test["label"], total))


@pytest.mark.slow
@pytest.mark.xeducation
def test_rules_init_on_x_education_ranks_held_out_leads_well(tmp_path: Path):
    if not XEDU.is_file():
        pytest.skip(f"X Education export not found at {XEDU}; see features/specs/x-education.yaml")
    rules = tmp_path / "rules.yaml"
    spec = example_spec_path("x-education")
    result = runner.invoke(app, ["rules", "init", "--dataset", str(spec), "--out", str(rules)])
    assert result.exit_code == 0, result.output
    checked = runner.invoke(app, ["rules", "check", "--dataset", "x-education", str(rules)])
    assert checked.exit_code == 0, checked.output
    # Learned on 70% of the leads, scored on the other 30%.
    vocabulary = SpecVocabulary.from_spec(load_spec(spec))
    tables = load_tables(load_spec(spec))
    examples = tables.leads[["lead_id", "label"]]
    test = examples.sample(frac=0.3, random_state=0)
    train = examples.drop(test.index)
    in_sample, held_out = _holdout_auc(vocabulary, tables, train, test)
    assert held_out > 0.8, (in_sample, held_out)


@pytest.mark.slow
@pytest.mark.oulad
def test_rules_init_on_oulad_ranks_a_later_presentation(tmp_path: Path):
    if not (OULAD / "studentInfo.csv").is_file():
        pytest.skip(f"OULAD export not found at {OULAD}; see features/specs/oulad.yaml")
    from training.from_spec import build_spec_training_set

    spec = load_spec(example_spec_path("oulad"))
    tables = load_tables(spec, data_path=OULAD)
    vocabulary = SpecVocabulary.from_spec(spec)
    frame, _ = build_spec_training_set(tables)
    examples = frame[["lead_id", "as_of", "label"]]
    # Learned on the presentations before October 2014, scored on AAA 2014J.
    later = examples["as_of"] >= pd.Timestamp("2014-10-01", tz="UTC")
    in_sample, held_out = _holdout_auc(vocabulary, tables, examples[~later], examples[later])
    assert held_out > 0.6, (in_sample, held_out)
    generated = generate_rules(vocabulary, tables.leads, tables.activities, examples)
    kinds = {r.activity for r in generated.rules.rules if hasattr(r, "activity")}
    assert {"quiz", "content", "assessment"} <= kinds
    # A reason in the spec's words, for a scored enrolment.
    out = score_spec_leads(generated.rules, tables.leads.head(50), tables.activities,
                           pd.Timestamp("2013-11-01", tz="UTC"))
    sentences = {r.sentence for rs in out["reasons"] for r in rs}
    assert any(s.startswith("Module: ") for s in sentences)


def test_probe_counts_equal_the_engines_own(tiny_tables):
    # The counts lifts are learned from are the engine's: same window, strictly before as_of.
    vocabulary, tables = tiny_tables
    from rules_fallback.init import _probe

    examples = _examples(tables, 12)
    leads = tables.leads.set_index("lead_id").loc[examples["lead_id"]].reset_index()
    probe = evaluate(_probe(vocabulary, 30, 14), leads, tables.activities, examples["as_of"])
    acts = tables.activities
    for j, kind in enumerate(vocabulary.kinds):
        for row, count in zip(examples.itertuples(), probe.values[j], strict=True):
            age = row.as_of - acts.loc[(acts["lead_id"] == row.lead_id) & (acts["type"] == kind),
                                       "occurred_at"]
            assert count == int(((age > pd.Timedelta(0)) & (age < pd.Timedelta(days=30))).sum())


def test_rules_init_window_and_prior_strength_reach_the_file(tmp_path: Path):
    spec = write_time_spec(tmp_path / "tiny")
    rules = tmp_path / "rules.yaml"
    result = runner.invoke(app, ["rules", "init", "--dataset", str(spec), "--out", str(rules),
                                 "--window", "14d", "--prior-strength", "5"])
    assert result.exit_code == 0, result.output
    text = rules.read_text(encoding="utf-8")
    assert "window_days: 14\n" in text and "window_days: 30\n" not in text
    assert "m = 5 pseudo-examples" in text
    refused = runner.invoke(app, ["rules", "score", "--dataset", str(spec), "--out",
                                  str(tmp_path / "s.parquet")])
    assert refused.exit_code != 0 and "rules init" in refused.output
