"""A category scores the same whatever its case and surrounding whitespace, on the live
path and the vectorised one (which the batch job uses), for the model and the rules."""

from __future__ import annotations

import numpy as np
import pytest

import serving.scorer as scorer
from rules_fallback import load_rules
from serving.contract import ScoreRequest
from serving.scorer import Engine, ModelBundle, score_payloads
from tests.serving.conftest import NOW, lead_payload, make_crm


@pytest.fixture(scope="module")
def capitalised_model():
    """Trained on a CRM that writes "Software" and "Director", as the generator does."""
    from features.online import features_at
    from features.registry import FEATURE_SET_VERSION, categorical_features, feature_names
    from features.schema import validate_activities, validate_leads
    from training.model import LeadModel

    leads, acts = make_crm(1500, seed=42)
    leads = leads.assign(industry=leads["industry"].str.title(),
                         seniority=leads["seniority"].str.title())
    leads = validate_leads(leads)
    acts = validate_activities(acts, lead_ids=leads["lead_id"]).frame
    X = features_at(leads, acts, NOW)
    rng = np.random.default_rng(0)
    logit = (-2.5 + 2.0 * (X["industry"] == "Software").to_numpy(dtype=float)
             + 1.5 * (X["seniority"] == "Director").to_numpy(dtype=float))
    y = (rng.uniform(size=len(X)) < 1 / (1 + np.exp(-logit))).astype(int)
    half = len(X) // 2
    model = LeadModel(feature_names(), categorical_features(), FEATURE_SET_VERSION,
                      params={"min_data_in_leaf": 20, "num_leaves": 7},
                      num_boost_round=40, early_stopping_rounds=40)
    model.fit(X.iloc[:half], y[:half], X.iloc[half:], y[half:])
    model.cold_start = {"preferred": "rules"}
    return model


@pytest.mark.parametrize("policy", ["model", "rules"])
def test_spelling_of_a_category_changes_no_score_on_either_path(capitalised_model, monkeypatch,
                                                                policy):
    bundle = ModelBundle(capitalised_model, "lead-scoring", "1", "champion", "models:/x/1", NOW)
    engine = Engine(bundle, load_rules(), policy)
    leads, acts = make_crm(5, seed=3)
    base = lead_payload(leads, acts, 0)
    if policy == "rules":
        base["activities"] = []  # a cold start: the rules answer
    payloads = [
        {**base, "lead_id": f"L-{i}", "industry": industry, "seniority": seniority}
        for i, (industry, seniority) in enumerate([
            ("Software", "Director"), ("software", "director"), (" SOFTWARE\t", "  Director "),
            ("unheard-of", None),
        ])
    ]
    request = ScoreRequest.model_validate({"leads": payloads, "as_of": NOW.isoformat()})
    answers = []
    for limit in (scorer.LIVE_MAX_LEADS, 0):  # the live path, then the vectorised one
        monkeypatch.setattr(scorer, "LIVE_MAX_LEADS", limit)
        answers.append(score_payloads([(request.leads, NOW)], engine, top_reasons=3)[0])
    for records in answers:
        assert {r["scored_by"] for r in records} == {policy}
        spelled = [(r["probability"], r["score"], r["grade"], r["route"]) for r in records[:3]]
        assert spelled == [spelled[0]] * 3, spelled
        if policy == "model":
            # The category matters to this model, so a spelling it missed would show.
            assert records[3]["probability"] < records[0]["probability"]
    assert [r["probability"] for r in answers[0]] == [r["probability"] for r in answers[1]]


def test_a_blank_that_raises_the_score_says_why(monkeypatch):
    """ "Industry not given +0.23" reads as a bug unless the sentence says what it means."""
    from features.online import features_at
    from features.registry import FEATURE_SET_VERSION, categorical_features, feature_names
    from features.schema import validate_activities, validate_leads
    from serving.scorer import BLANK_RAISES_NOTE, explain_one, frames_from_payload
    from training.model import LeadModel

    leads, acts = make_crm(1500, seed=43)
    blank = np.random.default_rng(1).uniform(size=len(leads)) < 0.4
    leads = validate_leads(leads.assign(industry=leads["industry"].where(~blank, None)))
    acts = validate_activities(acts, lead_ids=leads["lead_id"]).frame
    X = features_at(leads, acts, NOW)
    logit = -2.5 + 2.5 * X["industry"].isna().to_numpy(dtype=float)
    y = (np.random.default_rng(0).uniform(size=len(X)) < 1 / (1 + np.exp(-logit))).astype(int)
    half = len(X) // 2
    model = LeadModel(feature_names(), categorical_features(), FEATURE_SET_VERSION,
                      params={"min_data_in_leaf": 20, "num_leaves": 7},
                      num_boost_round=40, early_stopping_rounds=40)
    model.fit(X.iloc[:half], y[:half], X.iloc[half:], y[half:])
    engine = Engine(ModelBundle(model, "lead-scoring", "1", "champion", "models:/x/1", NOW),
                    load_rules(), "model")
    given = {**lead_payload(leads, acts, int(np.flatnonzero(~blank)[0])), "lead_id": "given"}
    request = ScoreRequest.model_validate({"leads": [{**given, "industry": None, "lead_id": "b"},
                                                     given], "as_of": NOW.isoformat()})
    for limit in (scorer.LIVE_MAX_LEADS, 0):  # the live path, then the vectorised one
        monkeypatch.setattr(scorer, "LIVE_MAX_LEADS", limit)
        without, with_industry = score_payloads([(request.leads, NOW)], engine, top_reasons=3)[0]
        industry = [r for r in without["reasons"] if r.field == "industry"]
        assert industry and industry[0].impact > 0 and industry[0].value is None
        assert industry[0].sentence == "Industry not given" + BLANK_RAISES_NOTE
        # A given value, and a negative impact, read as before.
        assert all(not r.sentence.endswith(BLANK_RAISES_NOTE) for r in with_industry["reasons"])
    lead_frame, act_frame, _ = frames_from_payload(request.leads[:1], default_as_of=[NOW])
    explained = explain_one(lead_frame, act_frame, engine, as_of=NOW)
    industry = [r for r in explained["reasons"] if r.field == "industry"]
    assert industry[0].sentence == "Industry not given" + BLANK_RAISES_NOTE
