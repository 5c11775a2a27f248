"""The API through the ASGI app in-process: contract, auth, limits, errors, fallbacks."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from tests.serving.conftest import NOW, lead_payload

CONTRACT_FIELDS = {
    "lead_id", "as_of", "probability", "score", "grade", "route", "scored_by",
    "fallback_reason", "model_name", "model_version", "rules_version", "reasons", "trend",
    "fit", "engagement", "matrix_route", "actions", "decay",
}


def _body(crm, idx=(0,), **extra):
    leads, acts = crm
    return {"leads": [lead_payload(leads, acts, i) for i in idx],
            "as_of": NOW.isoformat(), **extra}


@pytest.fixture
def served(registry, lead_model):
    registry.models["1"] = lead_model
    registry.champion = "1"
    return registry


def test_score_returns_every_contract_field_with_model(make_client, served, crm):
    with make_client() as client:
        r = client.post("/score", json=_body(crm, idx=range(5)))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["lead_id"] for x in results] == list(crm[0]["lead_id"][:5])
    for x in results:
        assert set(x) == CONTRACT_FIELDS
        assert 0 <= x["probability"] <= 1 and 0 <= x["score"] <= 100
        assert x["grade"] in "ABCD" and x["route"] in ("sales", "nurture")
        for part in ("fit", "engagement"):
            assert set(x[part]) == {"score", "level", "part"}
            assert 0 <= x[part]["score"] <= 100 and x[part]["level"] in ("high", "low")
        assert x["matrix_route"] in ("sales", "targeted_nurture", "review", "recycle")
        assert x["actions"] is None and x["decay"] is None  # not asked
        if x["scored_by"] == "model":
            assert (x["model_name"], x["model_version"]) == ("lead-scoring", "1")
            assert x["fallback_reason"] is None
        for reason in x["reasons"]:
            assert set(reason) == {"field", "label", "value", "impact", "sentence"}
            assert reason["sentence"]
        impacts = [r["impact"] for r in x["reasons"]]
        pos = [i for i in impacts if i > 0]
        neg = [i for i in impacts if i < 0]
        assert impacts == pos + neg and pos == sorted(pos, reverse=True)
        assert neg == sorted(neg) and len(pos) <= 3 and len(neg) <= 3
    assert any(x["scored_by"] == "model" for x in results)


def test_top_reasons_is_configurable(make_client, served, crm):
    with make_client() as client:
        one = client.post("/score", json=_body(crm, top_reasons=1)).json()["results"][0]
        none = client.post("/score", json=_body(crm, top_reasons=0)).json()["results"][0]
    assert len(one["reasons"]) <= 2 and none["reasons"] == []


def test_no_model_answers_from_rules_and_readiness_is_degraded(make_client, registry, crm):
    with make_client() as client:
        r = client.post("/score", json=_body(crm))
        ready = client.get("/readyz")
        info = client.get("/model").json()
    x = r.json()["results"][0]
    assert (x["scored_by"], x["fallback_reason"]) == ("rules", "no_model")
    assert x["model_name"] is None and x["model_version"] is None and x["rules_version"]
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert info["status"] == "degraded" and info["model_version"] is None


def test_registry_unreachable_at_start_serves_rules_and_says_why(make_client, registry, crm):
    registry.unreachable = True
    with make_client() as client:
        info = client.get("/model").json()
        x = client.post("/score", json=_body(crm)).json()["results"][0]
    assert info["status"] == "degraded" and "unreachable" in info["last_poll_error"]
    assert x["fallback_reason"] == "no_model"


def test_cold_start_policy(make_client, served, crm):
    leads, acts = crm
    lead = lead_payload(leads, acts, 0)
    lead["activities"] = []
    body = {"leads": [lead], "as_of": NOW.isoformat()}
    with make_client(cold_start_policy="rules") as client:
        x = client.post("/score", json=body).json()["results"][0]
    assert (x["scored_by"], x["fallback_reason"]) == ("rules", "cold_start")
    with make_client(cold_start_policy="auto") as client:  # the model recorded "model"
        x = client.post("/score", json=body).json()["results"][0]
        assert client.get("/model").json()["cold_start_effective"] == "model"
    assert (x["scored_by"], x["fallback_reason"]) == ("model", None)


@pytest.mark.parametrize("path", ["live", "vectorised"])
def test_model_error_falls_back_for_that_lead_only(make_client, served, crm, monkeypatch,
                                                    caplog, path):
    import serving.scorer as scorer

    bad_id = crm[0]["lead_id"].iloc[1]
    if path == "live":
        real_live = scorer.live_features

        def flaky(lead):
            if lead.attributes["email"] == crm[0]["email"].iloc[1]:
                raise RuntimeError("boom for someone@example.com")
            return real_live(lead)

        target = "live_features"
    else:
        monkeypatch.setattr(scorer, "LIVE_MAX_LEADS", 0)
        real = scorer.feature_columns_at

        def flaky(leads, acts, as_of):
            if (leads["lead_id"] == bad_id).any():
                raise RuntimeError("boom for someone@example.com")
            return real(leads, acts, as_of)

        target = "feature_columns_at"

    with make_client() as client:
        monkeypatch.setattr(scorer, target, flaky)
        with caplog.at_level(logging.INFO, logger="leadscore.serving"):
            r = client.post("/score", json=_body(crm, idx=range(3)))
    results = r.json()["results"]
    assert r.status_code == 200
    assert [x["fallback_reason"] for x in results] == [None, "model_error", None]
    assert results[1]["scored_by"] == "rules"
    assert bad_id in caplog.text and "example.com" not in caplog.text


def test_auth(make_client, registry, crm):
    with make_client(api_key="secret") as client:
        assert client.post("/score", json=_body(crm), headers={"Authorization": ""}
                           ).status_code == 401
        r = client.post("/score", json=_body(crm), headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["request_id"]
        assert client.get("/model", headers={"Authorization": "Basic secret"}).status_code == 401
        for public in ("/healthz", "/readyz", "/docs.json", "/"):
            assert client.get(public, headers={"Authorization": ""}).status_code == 200, public
        assert client.post("/score", json=_body(crm)).status_code == 200


def test_start_without_key_fails_unless_development_mode(make_client, registry, crm, caplog):
    from features.errors import LeadscoreError
    from serving.service import LeadScoring

    with pytest.raises(LeadscoreError, match="LEADSCORE_API_KEY"):
        LeadScoring.inner()
    with caplog.at_level(logging.WARNING), \
            make_client(api_key=None, allow_unauthenticated="true") as client:
        assert client.post("/score", json=_body(crm)).status_code == 200
    assert "DEVELOPMENT MODE" in caplog.text


def test_malformed_leads_get_422_naming_index_and_field(make_client, registry, crm):
    body = _body(crm, idx=range(4))
    del body["leads"][0]["lead_id"]
    body["leads"][3]["created_at"] = "not a date"
    body["leads"][2]["activities"] = [{"type": "page_view", "occurred_at": "2026-01-01T00:00:00"}]
    with make_client() as client:
        r = client.post("/score", json=body)
    assert r.status_code == 422
    detail = "\n".join(r.json()["detail"])
    assert "leads[0].lead_id: Field required" in detail
    assert "leads[3].created_at" in detail
    assert "leads[2].activities[0].occurred_at" in detail  # naive timestamp


def test_contract_violations_beyond_types_get_422(make_client, registry, crm):
    body = _body(crm, idx=range(2))
    body["leads"][1]["lead_id"] = body["leads"][0]["lead_id"]
    late = _body(crm)
    late["leads"][0]["created_at"] = "2027-01-01T00:00:00Z"
    with make_client() as client:
        dup = client.post("/score", json=body)
        after = client.post("/score", json=late)
    assert dup.status_code == 422 and "leads[1].lead_id" in "".join(dup.json()["detail"])
    assert after.status_code == 422 and "leads[0].created_at" in "".join(after.json()["detail"])


def test_awkward_but_valid_leads_are_scored(make_client, served, crm):
    leads, acts = crm
    minimal = {"lead_id": "bare", "created_at": "2026-01-01T00:00:00Z"}
    strange = {**lead_payload(leads, acts, 0), "lead_id": "strange", "industry": "underwater",
               "country": "ZZ", "seniority": None, "job_title": "x" * 300,
               "unknown_field": {"nested": True}}
    long = {"lead_id": "long", "created_at": "2025-01-01T00:00:00Z", "activities": [
        {"type": ["page_view", "custom_crm_thing"][i % 2],
         "occurred_at": (NOW - pd.Timedelta(minutes=7 * i + 1)).isoformat()}
        for i in range(5000)]}
    with make_client() as client:
        r = client.post("/score", json={"leads": [minimal, strange, long],
                                        "as_of": NOW.isoformat()})
    assert r.status_code == 200, r.text
    assert [x["lead_id"] for x in r.json()["results"]] == ["bare", "strange", "long"]


def test_limits_return_413(make_client, registry, crm):
    with make_client(max_batch=2, max_body_bytes=200_000) as client:
        many = client.post("/score", json=_body(crm, idx=range(3)))
        big = client.post("/score", content=b'{"leads": [' + b" " * 300_000 + b"]}",
                          headers={"content-type": "application/json"})
    assert many.status_code == 413 and "limit is 2" in "".join(many.json()["detail"])
    assert big.status_code == 413


def test_errors_carry_no_stack_trace(make_client, served, crm, monkeypatch):
    from serving.coalescer import Coalescer

    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    with make_client() as client:
        monkeypatch.setattr(Coalescer, "score", broken)
        r = client.post("/score", json=_body(crm))
        garbage = client.post("/score", content=b"{not json",
                              headers={"content-type": "application/json"})
    assert r.status_code == 500
    assert set(r.json()) == {"error", "detail", "request_id"}
    assert "Traceback" not in r.text and "secret" not in r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert garbage.status_code == 400 and "Traceback" not in garbage.text


def test_explain_agrees_with_score(make_client, served, crm):
    leads, acts = crm
    lead = lead_payload(leads, acts, 0)
    with make_client() as client:
        e = client.post("/explain", json={"lead": lead, "as_of": NOW.isoformat()}).json()
        s = client.post("/score", json={"leads": [lead], "as_of": NOW.isoformat()}).json()
    assert e["result"]["probability"] == pytest.approx(s["results"][0]["probability"])
    total = e["base_value"] + sum(c["contribution"] for c in e["contributions"])
    assert total == pytest.approx(e["raw_margin"], abs=1e-9)
    assert sum(r["impact"] for r in e["reasons"]) == pytest.approx(
        e["raw_margin"] - e["base_value"], abs=1e-9)
    assert len(e["contributions"]) == 61 or len(e["contributions"]) > 10


def test_model_endpoint_and_openapi(make_client, served):
    with make_client() as client:
        info = client.get("/model").json()
        spec = client.get("/docs.json").json()
    assert info["model_name"] == "lead-scoring" and info["model_version"] == "1"
    assert info["metrics"] == {"test_roc_auc": 0.8} and info["loaded_at"]
    assert info["status"] == "ready" and info["rules_version"]
    for path in ("/score", "/explain", "/model"):
        assert path in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert "all-or-nothing" in spec["paths"]["/score"]["post"]["description"]
    assert schemas["Lead"]["properties"]["lead_id"]["description"]


@pytest.mark.parametrize("path", ["/score", "/explain"])
@pytest.mark.parametrize("field", ["created_at", "as_of", "activity"])
def test_out_of_range_timestamps_get_422_naming_the_field(make_client, served, crm, path,
                                                          field):
    # Found by the fuzz test: a year-0400 created_at on /explain overflowed inside
    # pandas and answered 500. The contract now refuses it like any bad value.
    leads, acts = crm
    lead = lead_payload(leads, acts, 0)
    if field == "activity":
        lead["activities"] = [{"type": "page_view", "occurred_at": "0400-01-01T00:00:00Z"}]
        where = "activities[0].occurred_at"
    else:
        lead[field] = "0400-01-01T00:00:00Z" if field == "created_at" else "2262-05-01T00:00:00Z"
        where = field
    body = {"leads": [lead]} if path == "/score" else {"lead": lead}
    with make_client() as client:
        r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    detail = "\n".join(r.json()["detail"])
    prefix = "leads[0]." if path == "/score" else "lead."
    assert f"{prefix}{where}" in detail and "out of range" in detail, detail


def _history_run(history, run_id: str, as_of: str, scores: dict[str, int]) -> None:
    """One batch run's rows, written the way 'leadscore rescore' appends them."""
    import pyarrow as pa

    from serving.score_history import HISTORY_COLUMNS, append_history

    n = len(scores)
    run_dir = history.parent / "runs" / run_id
    run_dir.mkdir(parents=True)
    when = pa.array([pd.Timestamp(as_of)] * n, type=pa.timestamp("us", tz="UTC"))
    table = pa.table({
        "lead_id": list(scores), "as_of": when, "scored_at": when, "run_id": [run_id] * n,
        "probability": [s / 100 for s in scores.values()], "score": list(scores.values()),
        "grade": ["C"] * n, "scored_by": ["model"] * n, "model_version": ["1"] * n,
    })
    import pyarrow.parquet as pq

    pq.write_table(table.select(list(HISTORY_COLUMNS)), run_dir / "part-0.parquet")
    append_history(history, run_dir)


def test_results_carry_the_trend_from_the_batch_score_history(make_client, served, crm,
                                                               tmp_path):
    leads, _ = crm
    up, flat, down, never = (str(leads["lead_id"].iloc[i]) for i in range(4))
    history = tmp_path / "out" / "history"
    _history_run(history, "r1", "2026-02-01T00:00:00Z", {up: 10, flat: 30, down: 60})
    _history_run(history, "r2", "2026-02-08T00:00:00Z", {up: 25, flat: 32, down: 40})
    with make_client(history_dir=str(history)) as client:
        r = client.post("/score", json=_body(crm, idx=range(4)))
    assert r.status_code == 200, r.text
    trends = {x["lead_id"]: x["trend"] for x in r.json()["results"]}
    assert trends == {up: "improving", flat: "steady", down: "declining", never: None}


def test_without_a_history_there_is_no_trend(make_client, served, crm):
    with make_client() as client:
        r = client.post("/score", json=_body(crm, idx=range(2)))
    assert [x["trend"] for x in r.json()["results"]] == [None, None]



def test_the_live_feature_path_can_be_switched_off(make_client, served, crm, monkeypatch):
    import serving.scorer as scorer

    def broken(lead):
        raise RuntimeError("the live path is off, it must not run")

    monkeypatch.setattr(scorer, "live_features", broken)
    with make_client() as client:  # default: the live path, so every lead is a model_error
        on = client.post("/score", json=_body(crm, idx=(1, 2))).json()["results"]
    with make_client(live_features="false") as client:
        off = client.post("/score", json=_body(crm, idx=(1, 2))).json()["results"]
    assert [r["fallback_reason"] for r in on] == ["model_error", "model_error"]
    assert [(r["scored_by"], r["fallback_reason"]) for r in off] == [("model", None)] * 2


def test_metrics_count_who_answered_and_how_calls_were_shared(make_client, registry, served,
                                                               crm):
    # In process, prometheus_client counts in memory (the real server's /metrics, which
    # merges its workers' counts, is checked in tests/serving/test_integration.py).
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels or None) or 0.0

    with make_client() as client:
        version = client.get("/model").json()["model_version"]
        by_model = {"scored_by": "model", "fallback_reason": "none", "model_version": version}
        before = (sample("leadscore_scored_leads_total", **by_model),
                  sample("leadscore_scoring_calls_total"),
                  sample("leadscore_coalesced_requests_total"))
        cold = _body(crm, idx=(0,))
        cold["leads"][0]["activities"] = []
        assert client.post("/score", json=_body(crm, idx=(1, 2, 3))).status_code == 200
        assert client.post("/score", json=cold).status_code == 200
        after = (sample("leadscore_scored_leads_total", **by_model),
                 sample("leadscore_scoring_calls_total"),
                 sample("leadscore_coalesced_requests_total"))
    # The served model recorded "model" as better on cold starts: all four by the model,
    # in two calls of one request each (one request at a time: nothing to share).
    assert [b - a for a, b in zip(before, after, strict=True)] == [4, 2, 2]


def test_a_lead_the_rules_answer_decays_by_the_rules_at_each_later_day(make_client, served, crm):
    """No model history, the rules answer: its ``decay`` is the rules' own score of the
    same lead at as_of + 7, 14 and 30 days (checked against the rules engine directly),
    and events sent for after its as_of do not count."""
    from rules_fallback import load_rules, score_leads
    from serving.contract import Lead
    from serving.scorer import frames_from_payload, validate_inputs

    leads, acts = crm
    body = _body(crm, idx=(0,), decay=True)
    lead = body["leads"][0]
    lead["activities"] = []  # a cold start: the rules answer it under policy "rules"
    lead["created_at"] = (NOW - pd.Timedelta(days=20)).isoformat()  # inactive from day 22
    late = {"occurred_at": (NOW + pd.Timedelta(days=3)).isoformat(), "type": "demo_request"}
    with make_client(cold_start_policy="rules") as client:
        quiet = client.post("/score", json=body).json()["results"][0]
        lead["activities"] = [late]  # after as_of: not history, and ignored by decay
        with_late = client.post("/score", json=body).json()["results"][0]
    assert quiet["scored_by"] == "rules" and quiet["fallback_reason"] == "cold_start"
    assert with_late["decay"] == quiet["decay"]
    lead["activities"] = []
    frames = frames_from_payload([Lead.model_validate(lead)], default_as_of=NOW)
    clean, no_acts = validate_inputs(*frames)
    rules = load_rules(None)
    for point in quiet["decay"]["points"]:
        later = pd.Series([NOW + pd.Timedelta(days=point["days"])])
        want = score_leads(rules, clean, no_acts, later, reasons=False).iloc[0]
        assert point["probability"] == pytest.approx(float(want["probability"]), abs=1e-12)
        assert (point["score"], point["grade"]) == (int(want["score"]), str(want["grade"]))
    # The default inactivity rule (42 quiet days) fires at +22 days: the score falls.
    assert quiet["decay"]["points"][-1]["probability"] < quiet["probability"]
