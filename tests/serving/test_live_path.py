"""The live path of score_payloads (features.live, for a few leads) answers exactly as
the vectorised path does: the same records, fallbacks and errors, whoever answers."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import serving.scorer as scorer
from features.errors import DataValidationError
from rules_fallback import load_rules
from serving.contract import ScoreRequest
from serving.scorer import Engine, ModelBundle, score_payloads
from tests.serving.conftest import NOW, lead_payload

MESSY = [None, "", " ", " De ", "united states", "ﬁ", "İstanbul", "software", "\u00a0"]


@pytest.fixture(scope="module")
def engines(lead_model) -> dict[str, Engine]:
    bundle = ModelBundle(lead_model, "lead-scoring", "7", "champion", "models:/x/7", NOW)
    rules = load_rules()
    return {policy: Engine(bundle, rules, policy) for policy in ("rules", "model")}


def _both(requests: list[tuple[list[Any], pd.Timestamp]], engine: Engine, top: int,
          monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """(live, vectorised) outcomes: the records, or the DataValidationError's issues."""
    outcomes = []
    for limit in (scorer.LIVE_MAX_LEADS, 0):
        monkeypatch.setattr(scorer, "LIVE_MAX_LEADS", limit)
        try:
            outcomes.append(score_payloads(requests, engine, top_reasons=top))
        except DataValidationError as exc:
            outcomes.append(("invalid", exc.issues))
    monkeypatch.undo()
    return outcomes[0], outcomes[1]


@st.composite
def requests(draw: st.DrawFn, crm: tuple[pd.DataFrame, pd.DataFrame]
             ) -> list[tuple[list[Any], pd.Timestamp]]:
    leads, acts = crm
    out = []
    for _ in range(draw(st.integers(1, 3))):
        payloads = []
        for i in draw(st.lists(st.integers(0, len(leads) - 1), min_size=1, max_size=4,
                               unique=True)):
            lead = lead_payload(leads, acts, i)
            if draw(st.booleans()):
                lead["activities"] = draw(st.sampled_from(
                    [[], lead["activities"][:1], lead["activities"][::-1]]))
            for field in ("country", "industry", "source", "email"):
                if draw(st.integers(0, 4)) == 0:
                    lead[field] = draw(st.sampled_from(MESSY))
            if draw(st.integers(0, 3)) == 0:
                lead["as_of"] = (NOW - pd.Timedelta(days=draw(st.integers(0, 15)))).isoformat()
            payloads.append(lead)
        default = NOW - pd.Timedelta(hours=draw(st.integers(0, 500)))
        body = {"leads": payloads, "as_of": default.isoformat()}
        out.append((ScoreRequest.model_validate(body).leads, default))
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), policy=st.sampled_from(["rules", "model"]), top=st.sampled_from([0, 3, 50]))
def test_live_path_answers_as_the_vectorised_path(crm, engines, monkeypatch, data, policy, top):
    calls = data.draw(requests(crm))
    live, vectorised = _both(calls, engines[policy], top, monkeypatch)
    assert live == vectorised


@pytest.mark.parametrize("break_it", ["blank_type", "blank_id", "duplicate_id", "created_late"])
def test_invalid_leads_get_the_vectorised_errors(crm, engines, monkeypatch, break_it):
    leads, acts = crm
    payloads = [lead_payload(leads, acts, i) for i in (3, 4)]
    if break_it == "blank_type":
        payloads[1]["activities"] = [{"type": " \u00a0", "occurred_at": "2026-02-01T00:00:00Z"}]
    elif break_it == "blank_id":
        payloads[1]["lead_id"] = "  "
    elif break_it == "duplicate_id":
        payloads[1]["lead_id"] = payloads[0]["lead_id"]
    else:
        payloads[1]["created_at"] = (NOW + pd.Timedelta(days=1)).isoformat()
        payloads[1]["as_of"] = NOW.isoformat()
    request = ScoreRequest.model_validate({"leads": payloads, "as_of": NOW.isoformat()})
    live, vectorised = _both([(request.leads, NOW)], engines["model"], 3, monkeypatch)
    assert live[0] == "invalid" and live == vectorised


def test_the_live_path_is_taken_up_to_its_limit_only(crm, engines, monkeypatch):
    leads, acts = crm
    seen = []
    real = scorer.live_features
    monkeypatch.setattr(scorer, "live_features", lambda lead: seen.append(1) or real(lead))
    request = ScoreRequest.model_validate(
        {"leads": [lead_payload(leads, acts, i) for i in range(3)], "as_of": NOW.isoformat()})
    assert scorer.LIVE_MAX_LEADS >= 1000  # every API call, at the default batch limit
    score_payloads([(request.leads, NOW)], engines["model"], top_reasons=3)
    assert len(seen) == 3
    monkeypatch.setattr(scorer, "LIVE_MAX_LEADS", 2)
    score_payloads([(request.leads, NOW)], engines["model"], top_reasons=3)
    assert len(seen) == 3  # three leads, over the limit: the vectorised path
