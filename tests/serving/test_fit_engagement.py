"""Fit and engagement, the next action and decay, for a spec's model (any CRM).

One small model of a CRM of our own invention (``tests/training/test_from_spec.py``'s
acme, with two actionable kinds), trained in process with a monotone constraint on every
feature that moves with time, so that "nothing new happens" can only lower its margin.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.serving.test_spec_contract import _payloads
from tests.training.test_from_spec import SPEC, write_crm

ACTIONABLE_SPEC = copy.deepcopy(SPEC)
_kinds = ACTIONABLE_SPEC["tables"]["activities"]["kinds"]
_kinds["call"]["actionable"] = True
_kinds["webinar"]["actionable"] = True


def _constraint(name: str) -> int:
    """+1 for counts and decayed engagement, -1 for recency: both fall as a lead goes quiet."""
    if name.startswith("days_since_last"):
        return -1
    if "_count_" in name or name.startswith(("engagement_decayed", "active_days")):
        return 1
    return 0


@pytest.fixture(scope="module")
def acme_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, Any]:
    from features.spec import load_spec, load_tables
    from training.from_spec import build_spec_training_set, feature_set_for
    from training.model import LeadModel

    folder = tmp_path_factory.mktemp("acme")
    spec = write_crm(folder, n=1200, spec=ACTIONABLE_SPEC)
    tables = load_tables(load_spec(spec))
    fs = feature_set_for(tables)
    frame, _ = build_spec_training_set(tables, fs)
    frame = frame.sort_values("as_of", kind="stable").reset_index(drop=True)
    # Velocity and lead age move either way with time: left out, so the model is
    # monotone in everything that changes when nothing new happens.
    names = [n for n in fs.feature_names() if n not in ("activity_velocity", "lead_age_days")]
    cats = [n for n in fs.categorical_features() if n in names]
    y = frame["label"].to_numpy(dtype=int)
    half = len(frame) * 2 // 3
    model = LeadModel(names, cats, fs.version,
                      params={"min_data_in_leaf": 20, "num_leaves": 15,
                              "monotone_constraints": [_constraint(n) for n in names],
                              "monotone_constraints_method": "advanced"},
                      num_boost_round=80, early_stopping_rounds=30)
    model.fit(frame.iloc[:half][names], y[:half], frame.iloc[half:][names], y[half:])
    model.feature_set_definition = fs.to_json()
    model.dataset_spec = spec.read_text(encoding="utf-8")
    model.fit_matrix(frame.iloc[:half][names])
    return spec, frame, model


def _engine(model: Any, policy: str = "model") -> Any:
    from rules_fallback import load_rules
    from serving.scorer import Engine, ModelBundle

    bundle = ModelBundle(model, "lead-scoring", "1", "champion", "models:/lead-scoring/1",
                         datetime.now(UTC))
    return Engine(bundle, load_rules(None), policy)


def test_the_spec_declares_the_groups_and_the_feature_set_carries_them(acme_model):
    spec, _, model = acme_model
    groups = model.matrix().groups
    assert list(groups) == model.feature_names
    # The lead's own columns are fit; everything from the activity log is engagement.
    assert groups["lead_source"] == groups["employees"] == "fit"
    assert {groups[n] for n in model.feature_names if n.startswith(("kind_", "call_", "web_"))
            or "activity" in n} <= {"engagement"}
    assert groups["call_count_7d"] == groups["days_since_last_activity"] == "engagement"
    assert model.feature_set().actionable == ("call", "webinar")
    # Shipped with the model: 201 points of each part's training distribution.
    assert model.matrix().n_reference > 0
    assert len(model.fit_engagement["quantiles"]["fit"]) == 201


def test_base_plus_fit_plus_engagement_is_the_raw_margin_for_1000_leads(acme_model):
    from serving.spec_contract import SpecContract
    from serving.spec_scoring import score_spec_leads

    spec, frame, model = acme_model
    contract = SpecContract.from_model(model)
    rows = frame.drop_duplicates("lead_id").head(1000)
    assert len(rows) == 1000
    payloads = _payloads(spec.parent, list(rows["lead_id"]))
    as_of = rows["as_of"].max().to_pydatetime()
    leads = [contract.lead_model.model_validate({**payloads[i], "as_of": a.isoformat()})
             for i, a in zip(rows["lead_id"], rows["as_of"], strict=True)]
    out = score_spec_leads(leads, as_of, _engine(model), contract, top_reasons=0)
    X = rows[model.feature_names]
    margin = model.raw_margin(X)
    contrib, base = model.contributions(X)
    fit = np.array([r["fit"]["part"] for r in out])
    engagement = np.array([r["engagement"]["part"] for r in out])
    np.testing.assert_allclose(base + fit + engagement, margin, rtol=0, atol=1e-9)
    # Each part is its own group's contributions, nothing of the other's.
    is_fit = np.array([model.matrix().groups[n] == "fit" for n in model.feature_names])
    np.testing.assert_allclose(fit, contrib[:, is_fit].sum(axis=1), rtol=0, atol=1e-12)
    # Both parts move: neither is a constant or the other's copy.
    assert fit.std() > 0.01 and engagement.std() > 0.01
    assert not np.allclose(fit, engagement)
    # Scores are percentiles of the training rows' parts, levels and routes follow them.
    scores = np.array([r["fit"]["score"] for r in out])
    assert 0 <= scores.min() < 30 and 70 < scores.max() <= 100
    for r in out:
        for part in ("fit", "engagement"):
            assert r[part]["level"] == ("high" if r[part]["score"] >= 50 else "low")
        want = {("high", "high"): "sales", ("high", "low"): "targeted_nurture",
                ("low", "high"): "review", ("low", "low"): "recycle"}
        assert r["matrix_route"] == want[r["fit"]["level"], r["engagement"]["level"]]
    assert len({r["matrix_route"] for r in out}) >= 3


def test_thresholds_override_the_shipped_ones(acme_model):
    from features.matrix import Thresholds
    from serving.scorer import Engine
    from serving.spec_contract import SpecContract
    from serving.spec_scoring import score_spec_leads

    spec, frame, model = acme_model
    contract = SpecContract.from_model(model)
    rows = frame.drop_duplicates("lead_id").head(50)
    payloads = _payloads(spec.parent, list(rows["lead_id"]))
    leads = [contract.lead_model.model_validate(payloads[i]) for i in rows["lead_id"]]
    as_of = rows["as_of"].max().to_pydatetime()
    engine = _engine(model)
    strict = Engine(engine.model, engine.rules, "model", Thresholds(fit=100, engagement=0))
    out = score_spec_leads(leads, as_of, strict, contract)
    # Fit high needs 100 (the top training lead); engagement is always high.
    assert {r["engagement"]["level"] for r in out} == {"high"}
    assert {r["matrix_route"] for r in out} <= {"review", "sales"}
    assert "review" in {r["matrix_route"] for r in out}


def test_the_rules_give_the_parts_from_their_fit_and_engagement_rules():
    from rules_fallback import load_rules, score_leads
    from rules_fallback.engine import evaluate
    from rules_fallback.rules import FitRule
    from tests.serving.conftest import NOW, make_crm

    leads, acts = make_crm(200, seed=4)
    rules = load_rules(None)
    evaluation = evaluate(rules, leads, acts, NOW)
    base, fit, engagement = evaluation.parts()
    logit = np.log(evaluation.probability / (1 - evaluation.probability))
    np.testing.assert_allclose(base + fit + engagement, logit, rtol=0, atol=1e-9)
    is_fit = np.array([isinstance(r, FitRule) for r in rules.rules])
    unclipped = evaluation.points.sum(axis=1) == evaluation.total
    slope = rules.mapping.slope
    np.testing.assert_allclose(fit[unclipped], slope * evaluation.points[unclipped][:, is_fit]
                               .sum(axis=1), atol=1e-9)
    out = score_leads(rules, leads, acts, NOW, parts=True)
    assert out["fit_score"].between(0, 100).all() and out["engagement_score"].std() > 0


@pytest.mark.parametrize("value", ["behaviour", 3, True])
def test_a_bad_group_in_a_spec_is_named(value):
    from features.errors import SpecError
    from features.spec import parse_spec

    spec = copy.deepcopy(SPEC)
    spec["tables"]["leads"]["columns"]["numeric"] = [{"column": "Employees", "group": value}]
    with pytest.raises(SpecError, match=r"numeric\[0\]\.group.*expected 'fit'.*or 'engagement'"):
        parse_spec(spec)
    spec = copy.deepcopy(SPEC)
    spec["tables"]["leads"]["columns"]["pii"] = [{"column": "Email", "group": "fit"}]
    with pytest.raises(SpecError, match=r"pii\[0\]\.group: got 'fit'"):
        parse_spec(spec)
    spec = copy.deepcopy(SPEC)
    spec["tables"]["activities"]["kinds"]["call"]["actionable"] = "sometimes"
    with pytest.raises(SpecError, match=r"kinds\.call\.actionable.*expected true or false"):
        parse_spec(spec)


def test_a_flat_exports_engagement_columns_are_engagement():
    from features.registry import BUILTIN, BUILTIN_ACTIONABLE
    from features.spec import feature_set_of, load_spec
    from features.spec.contract import builtin_spec_path

    path = Path(__file__).resolve().parents[2] / "features" / "specs" / "x-education.yaml"
    groups = feature_set_of(load_spec(path)).groups()
    assert {n for n, g in groups.items() if g == "engagement"} == {
        "totalvisits", "total_time_spent_on_website", "page_views_per_visit"}
    # The built-in spec marks what the built-in feature set suggests.
    builtin = load_spec(builtin_spec_path())
    marked = tuple(k for k, v in builtin.tables.activities.kinds.items() if v.actionable)
    assert set(marked) == set(BUILTIN_ACTIONABLE) == set(BUILTIN.actionable)
    assert BUILTIN.groups()["industry"] == "fit"
    assert BUILTIN.groups()["last_touch_channel"] == "engagement"


# --------------------------------------------------------------------------- over HTTP


def _recent_payloads(spec: Path, frame: pd.DataFrame, n: int) -> tuple[list[dict], pd.Timestamp]:
    """``n`` leads active in the week before the last snapshot, as the CRM sends them."""
    as_of = frame["as_of"].max()
    recent = frame[(frame["as_of"] == as_of) & (frame["days_since_last_activity"] < 7)]
    ids = list(recent["lead_id"].head(n))
    payloads = _payloads(spec.parent, ids)
    # The export holds the leads' later history too: as of the snapshot, that is "new".
    for lead in payloads.values():
        lead["activities"] = [a for a in lead["activities"]
                              if pd.Timestamp(a["occurred_at"]) < as_of]
    return [payloads[i] for i in ids], as_of


def test_spec_service_answers_actions_that_score_does_with_the_event_added(
        acme_model, registry, make_client):
    spec, frame, model = acme_model
    registry.models["1"] = model
    registry.champion = "1"
    leads, as_of = _recent_payloads(spec, frame, 8)
    with make_client() as client:
        r = client.post("/score", json={"leads": leads, "as_of": as_of.isoformat(),
                                        "actions": 3})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        checked = 0
        for lead, result in zip(leads, results, strict=True):
            assert result["fit"]["level"] in ("high", "low") and result["matrix_route"]
            assert result["decay"] is None  # not asked
            actions = result["actions"]
            # Two actionable kinds in this spec: both come back, best first.
            assert [a["kind"] for a in actions] in (["call", "webinar"], ["webinar", "call"])
            assert actions[0]["probability"] >= actions[1]["probability"]
            for action in actions:
                event = {"type": action["type"],
                         "occurred_at": (as_of - pd.Timedelta(seconds=1)).isoformat()}
                again = client.post("/score", json={
                    "leads": [{**lead, "activities": [*lead["activities"], event]}],
                    "as_of": as_of.isoformat()}).json()["results"][0]
                assert action["probability"] == pytest.approx(again["probability"], abs=1e-9)
                assert (action["score"], action["grade"]) == (again["score"], again["grade"])
                assert action["score_change"] == action["score"] - result["score"]
                assert action["sentence"].startswith(f"If this lead {action['label']} now")
                assert f"from {result['score']} to {action['score']}" in action["sentence"] \
                    or action["score_change"] == 0
                checked += 1
    assert checked == 16


def test_decay_declines_for_a_monotone_model_and_drops_on_the_first_lower_day(
        acme_model, registry, make_client):
    spec, frame, model = acme_model
    registry.models["1"] = model
    registry.champion = "1"
    leads, as_of = _recent_payloads(spec, frame, 30)
    with make_client() as client:
        r = client.post("/score", json={"leads": leads, "as_of": as_of.isoformat(),
                                        "decay": True})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        dropped = [(lead, x) for lead, x in zip(leads, results, strict=True)
                   if x["decay"]["grade_drop"] is not None]
        assert dropped, [x["grade"] for x in results]
        for lead, x in [*dropped[:2], *[(le, y) for le, y in zip(leads, results, strict=True)
                                         if y["decay"]["grade_drop"] is None][:1]]:
            decay = x["decay"]
            assert [p["days"] for p in decay["points"]] == [7, 14, 30]
            # The same lead sent once per day, each at its own later as_of, nothing new.
            days = list(range(0, 31))
            copies = [{**lead, "lead_id": f"{lead['lead_id']}+{d}",
                       "as_of": (as_of + pd.Timedelta(days=d)).isoformat()} for d in days]
            later = client.post("/score", json={"leads": copies}).json()["results"]
            probability = [y["probability"] for y in later]
            assert probability[0] == pytest.approx(x["probability"], abs=1e-9)
            # Monotone model, nothing new: never up; and down over the month.
            assert all(b <= a + 1e-12 for a, b in zip(probability, probability[1:], strict=False)), probability
            assert probability[30] < probability[0]
            for point in decay["points"]:
                assert point["probability"] == pytest.approx(probability[point["days"]],
                                                             abs=1e-9)
                assert point["grade"] == later[point["days"]]["grade"]
            grades = [y["grade"] for y in later]
            lower = [d for d in days if "ABCD".index(grades[d]) > "ABCD".index(x["grade"])]
            drop = decay["grade_drop"]
            if drop is None:
                assert lower == [] and "keeps grade" in decay["sentence"]
            else:
                assert drop["days"] == lower[0] and drop["grade"] == grades[lower[0]]
                when = as_of + pd.Timedelta(days=drop["days"])
                assert drop["date"] == when.date().isoformat()
                assert decay["sentence"] == (f"Without new activity this lead drops to grade "
                                             f"{drop['grade']} on {when.day} "
                                             f"{when.strftime('%B')}.")


def test_builtin_score_answers_the_same_fields_through_the_shared_code(
        lead_model, registry, make_client, crm):
    from tests.serving.conftest import NOW, lead_payload

    registry.models["1"] = lead_model
    registry.champion = "1"
    leads, acts = crm
    active = [i for i in range(60) if (acts["lead_id"] == leads["lead_id"].iloc[i]).any()][:3]
    body = {"leads": [lead_payload(leads, acts, i) for i in active], "as_of": NOW.isoformat(),
            "actions": 3, "decay": True}
    with make_client() as client:
        results = client.post("/score", json=body).json()["results"]
        for lead, x in zip(body["leads"], results, strict=True):
            assert x["fit"]["part"] != 0 and x["matrix_route"]
            assert {a["kind"] for a in x["actions"]} == {"demo_request", "webinar_attended",
                                                         "pricing_page_view"}
            assert len(x["decay"]["points"]) == 3 and x["decay"]["sentence"]
            top = x["actions"][0]
            event = {"type": top["type"],
                     "occurred_at": (NOW - pd.Timedelta(seconds=1)).isoformat()}
            again = client.post("/score", json={
                "leads": [{**lead, "activities": [*lead["activities"], event]}],
                "as_of": NOW.isoformat()}).json()["results"][0]
            assert top["probability"] == pytest.approx(again["probability"], abs=1e-9)
        explained = client.post("/explain", json={"lead": body["leads"][0],
                                                  "as_of": NOW.isoformat()}).json()
    result = explained["result"]
    assert (explained["base_value"] + result["fit"]["part"] + result["engagement"]["part"]
            == pytest.approx(explained["raw_margin"], abs=1e-9))


def test_rescore_writes_the_matrix_and_decay_as_the_api_gives_them(acme_model, tmp_path):
    import pyarrow.parquet as pq

    from serving.batch import OUTPUT_SCHEMA
    from serving.spec_batch import DECAY_COLUMNS, rescore_spec
    from serving.spec_contract import SpecContract
    from serving.spec_scoring import score_spec_leads
    from serving.whatif import actionable_kinds, extend_rows

    spec, frame, model = acme_model
    as_of = frame["as_of"].max()
    out = tmp_path / "out"
    result = rescore_spec(spec, out, model, model_name="lead-scoring", model_version="1",
                          as_of=as_of, top_reasons=0, decay=True, cold_start_policy="model")
    table = pq.read_table(out / "scores")
    assert table.schema.names == [*OUTPUT_SCHEMA.names, *DECAY_COLUMNS]
    scored = table.to_pandas().set_index("lead_id")
    assert len(scored) == result.n_scored > 100
    assert scored["grade_drop_date"].notna().any() and scored["grade_drop_date"].isna().any()
    # The same leads through the API's core and its decay: the same values.
    contract = SpecContract.from_model(model)
    ids = list(scored.index[:40])
    payloads = _payloads(spec.parent, ids)
    for lead in payloads.values():
        lead["activities"] = [a for a in lead["activities"]
                              if pd.Timestamp(a["occurred_at"]) < as_of]
    leads = [contract.lead_model.model_validate(payloads[i]) for i in ids]
    engine = _engine(model)
    rows = score_spec_leads(leads, as_of.to_pydatetime(), engine, contract, top_reasons=0)
    extend_rows(rows, [contract.live_lead(lead, as_of.to_pydatetime()) for lead in leads],
                engine, contract.feature_set, actionable_kinds(contract.feature_set, contract.spec),
                actions=0, decay=True)
    for row in rows:
        got = scored.loc[row["lead_id"]]
        assert got["probability"] == pytest.approx(row["probability"], abs=1e-9)
        assert (got["fit_score"], got["engagement_score"], got["matrix_route"]) == (
            row["fit"]["score"], row["engagement"]["score"], row["matrix_route"])
        points = {p["days"]: p for p in row["decay"]["points"]}
        for days in (7, 14, 30):
            assert got[f"decay_{days}d_probability"] == pytest.approx(
                points[days]["probability"], abs=1e-9)
            assert got[f"decay_{days}d_grade"] == points[days]["grade"]
        drop = row["decay"]["grade_drop"]
        if drop is None:
            assert pd.isna(got["grade_drop_date"])
        else:
            assert got["grade_drop_date"].isoformat() == drop["date"]
            assert got["grade_drop_grade"] == drop["grade"]


@pytest.mark.xeducation
def test_an_x_education_lead_gets_fit_engagement_and_a_matrix_route(xeducation_csv):
    """A flat export: the three website counts are engagement (the spec says so), the
    form fields fit; the parts add up for its model too."""
    from features.registry import FeatureSet
    from features.spec import example_spec_path
    from serving.spec_contract import SpecContract
    from serving.spec_scoring import score_spec_leads
    from training.model import LeadModel
    from training.pipeline import training_data_from_spec

    spec_path = example_spec_path("x-education")
    data = training_data_from_spec(spec_path, xeducation_csv)
    fs = FeatureSet.from_json(data.schema.feature_set)
    names, cats = fs.feature_names(), fs.categorical_features()
    frame = data.frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    y = frame["label"].to_numpy(dtype=int)
    half = len(frame) // 2
    model = LeadModel(names, cats, fs.version, num_boost_round=60, early_stopping_rounds=20,
                      params={"min_data_in_leaf": 40})
    model.fit(frame.iloc[:half][names], y[:half], frame.iloc[half:][names], y[half:])
    model.feature_set_definition = fs.to_json()
    model.dataset_spec = Path(spec_path).read_text(encoding="utf-8")
    model.fit_matrix(frame.iloc[:half][names])
    contract = SpecContract.from_model(model)
    raw = pd.read_csv(xeducation_csv, dtype=str).set_index("Prospect ID")
    rows = frame.iloc[half:half + 200]
    leads = []
    for lead_id in rows["lead_id"]:
        payload = {"lead_id": lead_id}
        for f in contract.fields:
            value = raw.loc[lead_id, f.column]
            payload[f.column] = None if pd.isna(value) else (
                float(value) if f.kind == "numeric" else value)
        leads.append(contract.lead_model.model_validate(payload))
    out = score_spec_leads(leads, datetime.now(UTC), _engine(model), contract, top_reasons=0)
    X = rows[model.feature_names]
    _, base = model.contributions(X)
    total = base + np.array([r["fit"]["part"] + r["engagement"]["part"] for r in out])
    np.testing.assert_allclose(total, model.raw_margin(X), rtol=0, atol=1e-9)
    engagement = np.array([r["engagement"]["part"] for r in out])
    assert engagement.std() > 0.05  # the website counts carry weight on this export
    assert {r["matrix_route"] for r in out} <= {"sales", "targeted_nurture", "review",
                                                 "recycle"}
    assert len({r["matrix_route"] for r in out}) >= 3


def test_the_few_rows_path_gives_the_vectorised_paths_values():
    from features.matrix import FitEngagement

    rng = np.random.default_rng(7)
    groups = {f"f{i}": ("fit" if i % 3 else "engagement") for i in range(9)}
    train = rng.normal(size=(3000, 9))
    train[:1200, [0, 3, 6]] = 0.0  # a run of ties, as leads with no activity make
    matrix = FitEngagement.fit(groups, train)
    rows = np.vstack([rng.normal(size=(200, 9)) * 2, train[:50], np.zeros((5, 9))])
    fit, engagement = matrix.parts(rows)  # many rows: numpy
    for start in range(0, len(rows), 5):  # five at a time: plain Python
        f, e = matrix.parts(rows[start:start + 5])
        np.testing.assert_allclose(f, fit[start:start + 5], rtol=0, atol=1e-12)
        np.testing.assert_allclose(e, engagement[start:start + 5], rtol=0, atol=1e-12)
        for group, part in (("fit", fit), ("engagement", engagement)):
            assert matrix.score(group, part[start:start + 5]).tolist() == \
                matrix.score(group, part).tolist()[start:start + 5]
    assert min(matrix.score("fit", fit)) <= 5 and max(matrix.score("fit", fit)) >= 95
    assert matrix.score("fit", np.array([-1e9, 1e9])).tolist() == [0, 100]


def test_a_spec_lead_the_rules_answer_decays_by_those_rules(acme_model):
    """A cold start of a spec's model, answered by the operator's spec rules, decays by
    them: its points at +7/+14/+30 days are the rules' own score at those days."""
    from features.spec import load_spec, load_tables
    from rules_fallback import score_spec_leads as score_with_rules
    from rules_fallback.init import generate_rules
    from rules_fallback.spec_rules import SpecVocabulary
    from serving.spec_contract import SpecContract
    from serving.spec_scoring import score_spec_leads, spec_rules_decay
    from serving.whatif import actionable_kinds, extend_rows

    spec, frame, model = acme_model
    spec_obj = load_spec(spec)
    tables = load_tables(spec_obj)
    rules = generate_rules(SpecVocabulary.from_spec(spec_obj), tables.leads,
                           tables.activities).rules
    contract = SpecContract.from_model(model)
    as_of = frame["as_of"].max().to_pydatetime()
    payload = next(iter(_payloads(spec.parent, [frame["lead_id"].iloc[0]]).values()))
    payload = {**payload, "activities": [],
               "created_at": (pd.Timestamp(as_of) - pd.Timedelta(days=3)).isoformat()}
    leads = [contract.lead_model.model_validate(payload)]
    engine = _engine(model, policy="rules")
    rows = score_spec_leads(leads, as_of, engine, contract, top_reasons=0, rules=rules)
    assert (rows[0]["scored_by"], rows[0]["fallback_reason"]) == ("rules", "cold_start")
    lives = [contract.live_lead(lead, as_of) for lead in leads]
    extend_rows(rows, lives, engine, contract.feature_set,
                actionable_kinds(contract.feature_set, contract.spec), actions=0, decay=True,
                rules_decay=spec_rules_decay(rows, lives, engine, contract, rules))
    decay = rows[0]["decay"]
    assert decay is not None
    from serving.spec_scoring import _frames

    r_leads, r_acts, _ = _frames(lives, [payload["lead_id"]], contract)
    for point in decay["points"]:
        later = pd.Series([pd.Timestamp(as_of) + pd.Timedelta(days=point["days"])])
        want = score_with_rules(rules, r_leads, r_acts, later, reasons=False).iloc[0]
        assert point["probability"] == pytest.approx(float(want["probability"]), abs=1e-12)
        assert point["grade"] == str(want["grade"])
    assert decay["sentence"].startswith("Without new activity this lead ")
