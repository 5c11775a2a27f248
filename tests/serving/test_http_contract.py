"""What an integrator and an attacker meet over HTTP, in-process (issue #17).

Content types, empty keys, one request id, the docs page and the OpenAPI document as a
contract: every status the API returns is declared there, with its schema, and the real
responses of each are validated against it. (The same rules through BentoML's real
HTTP server and its log: ``tests/serving/test_http_server.py``.)
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from tests.serving.conftest import NOW, lead_payload

EMAIL = "ada.pii@example-leads.test"

# (Content-Type header, or None for none) -> the status /score must answer
CONTENT_TYPES = {
    "application/json": 200,
    "application/json; charset=utf-8": 200,
    None: 200,
    "application/x-www-form-urlencoded": 415,
    "multipart/form-data": 415,
    "multipart/form-data; boundary=xyz": 415,
    "text/plain": 415,
    "application/xml": 415,
    "garbage": 415,
    ";;;": 415,
}


def _body(crm) -> dict:
    leads, acts = crm
    lead = {**lead_payload(leads, acts, 0), "email": EMAIL}
    return {"leads": [lead], "as_of": NOW.isoformat()}


@pytest.fixture
def served(registry, lead_model):
    registry.models["1"] = lead_model
    registry.champion = "1"
    return registry


def _error_shape(r) -> None:
    body = r.json()
    assert set(body) == {"error", "detail", "request_id"}, r.text
    assert body["error"] and body["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize("content_type", list(CONTENT_TYPES))
@pytest.mark.parametrize("path", ["/score", "/explain"])
def test_only_json_bodies_are_accepted_and_others_get_415(make_client, registry, crm,
                                                          content_type, path):
    import json

    body = _body(crm)
    if path == "/explain":
        body = {"lead": body["leads"][0], "as_of": body["as_of"]}
    headers = {} if content_type is None else {"content-type": content_type}
    with make_client() as client:
        r = client.post(path, content=json.dumps(body).encode(), headers=headers)
    assert r.status_code == CONTENT_TYPES[content_type], r.text
    if r.status_code == 415:
        _error_shape(r)
        assert "Content-Type: application/json" in r.json()["detail"][0]
    assert EMAIL not in r.text


def test_framework_errors_come_in_the_service_error_shape(make_client, registry):
    with make_client() as client:
        for method, path, status in (("GET", "/nope", 404), ("GET", "/score", 405),
                                     ("DELETE", "/model", 405)):
            r = client.request(method, path)
            assert r.status_code == status, (method, path, r.text)
            _error_shape(r)


@pytest.mark.parametrize("key", ["", " ", "\t \n"])
def test_an_empty_or_blank_api_key_is_refused_at_start(key):
    from pydantic import ValidationError

    from leadscore.settings import Settings

    with pytest.raises(ValidationError) as caught:
        Settings(api_key=key)
    message = " ".join(str(caught.value).split())
    assert "'LEADSCORE_API_KEY' setting must be a non-empty key" in message
    assert "Got an empty string" in message or "whitespace character(s)" in message


def test_the_service_refuses_to_start_with_an_empty_key(make_client, registry):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="LEADSCORE_API_KEY"), make_client(api_key=""):
        pass


def test_an_empty_bearer_token_never_authorizes(make_client, registry, crm):
    with make_client(api_key="secret") as client:
        for header in ("Bearer ", "Bearer", "Bearer    "):
            r = client.post("/score", json=_body(crm), headers={"Authorization": header})
            assert r.status_code == 401, header
            assert client.get("/model", headers={"Authorization": header}).status_code == 401


def test_leadscore_serve_refuses_an_empty_key_with_a_clear_message(tmp_path, isolated_env):
    import os

    from tests.servers import free_port, stop_server

    env = {**os.environ, "LEADSCORE_API_KEY": ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from leadscore.cli import main; main()", "serve", "--port",
         str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_server(proc)  # SIGTERM first: BentoML's arbiter then stops its workers
        raise AssertionError("leadscore serve started with an empty LEADSCORE_API_KEY") from None
    text = " ".join(out.split())  # rich wraps at 80 columns: compare without line breaks
    assert proc.returncode == 2, out
    assert "The 'LEADSCORE_API_KEY' setting must be a non-empty key" in text, out
    assert "Got an empty string instead" in text and "Traceback" not in out


def test_a_response_carries_one_request_id(make_client, registry, crm):
    with make_client() as client:
        responses = [client.post("/score", json=_body(crm)), client.get("/model"),
                     client.get("/readyz"), client.post("/score", json={"leads": []})]
        given = client.post("/score", json=_body(crm), headers={"X-Request-ID": "crm-42"})
    for r in responses + [given]:
        ids = [k for k in r.headers if "request-id" in k.lower()]
        assert ids == ["x-request-id"], r.headers
        assert len(r.headers.get_list("x-request-id")) == 1
    assert given.headers["x-request-id"] == "crm-42"


@pytest.mark.parametrize("path", ["/docs", "/"])
def test_docs_are_served_at_docs_offline_with_or_without_the_key(make_client, registry,
                                                                 path):
    with make_client(api_key="secret") as client:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer secret"}):
            r = client.get(path, headers=headers)
            assert r.status_code == 200 and "text/html" in r.headers["content-type"], r.text
            assert "swagger-ui" in r.text and "googletagmanager" not in r.text
            assert "http://" not in r.text and "https://" not in r.text  # nothing remote
            assets = [a for a in ("/static_content/swagger-ui-bundle.js",
                                  "/static_content/swagger-initializer.js") if a in r.text]
            assert len(assets) == 2
            for asset in assets:
                assert client.get(asset, headers=headers).status_code == 200
        assert client.get("/docs.json", headers={"Authorization": ""}).status_code == 200


# -- the OpenAPI document as the contract ------------------------------------------------


def _document(client) -> dict:
    return client.get("/docs.json").json()


def test_the_document_declares_the_key_every_error_and_its_own_version(make_client, registry):
    import json
    from importlib.metadata import version

    with make_client() as client:
        doc = _document(client)
    assert doc["info"]["title"] == "leadscore"
    assert doc["info"]["version"] == version("leadscore") != "None"
    text = json.dumps(doc)
    for boilerplate in ("img.shields.io", "badgen", "Slack", "BentoML Team",
                        "This is a Machine Learning Service"):
        assert boilerplate not in text
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"], "type": "http",
        "scheme": "bearer"}
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/readyz"]["get"]["security"] == []
    for path in ("/score", "/explain"):
        responses = doc["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "401", "413", "415", "422", "500", "503"}
        for status, response in responses.items():
            if status != "200":
                content = response["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
                assert set(content["example"]) == {"error", "detail", "request_id"}
    metrics = doc["components"]["schemas"]["ModelInfo"]["properties"]["metrics"]
    assert metrics["additionalProperties"] == {"type": "number", "nullable": True}


def _nan_model(lead_model):
    import copy

    model = copy.copy(lead_model)
    model.metrics = {"test_roc_auc": 0.8, "cold_start_model_auc": math.nan}
    return model


def test_real_responses_of_every_status_match_the_document(make_client, registry, crm,
                                                           lead_model, monkeypatch):
    import schemathesis

    registry.models["1"] = _nan_model(lead_model)
    registry.champion = "1"
    body = _body(crm)
    explain = {"lead": body["leads"][0], "as_of": body["as_of"]}
    bad = {"leads": [{**body["leads"][0], "created_at": "not a date"}]}
    calls = [
        ("POST", "/score", {"json": body}, 200),
        ("POST", "/explain", {"json": explain}, 200),
        ("GET", "/model", {}, 200),
        ("GET", "/readyz", {}, 200),
        ("POST", "/score", {"content": b"{not json",
                            "headers": {"content-type": "application/json"}}, 400),
        ("POST", "/score", {"json": body, "headers": {"Authorization": "Bearer "}}, 401),
        ("GET", "/model", {"headers": {"Authorization": "Bearer wrong"}}, 401),
        ("POST", "/explain", {"json": explain, "headers": {"Authorization": ""}}, 401),
        ("POST", "/score", {"json": {"leads": body["leads"] * 3}}, 413),
        ("POST", "/score", {"content": b'{"leads": [' + b" " * 300_000 + b"]}",
                            "headers": {"content-type": "application/json"}}, 413),
        ("POST", "/score", {"data": {"leads": "x"}}, 415),
        ("POST", "/explain", {"content": b"{}",
                              "headers": {"content-type": "multipart/form-data"}}, 415),
        ("POST", "/score", {"json": bad}, 422),
        ("POST", "/explain", {"json": {"lead": bad["leads"][0]}}, 422),
    ]
    seen: set[tuple[str, str, int]] = set()
    with make_client(max_batch=2, max_body_bytes=200_000) as client:
        schema = schemathesis.openapi.from_dict(_document(client))
        responses = [(m, p, client.request(m, p, **kw), want) for m, p, kw, want in calls]

        async def broken(*args, **kwargs):
            raise RuntimeError("secret internals")

        from serving.coalescer import Coalescer

        monkeypatch.setattr(Coalescer, "score", broken)
        responses.append(("POST", "/score", client.post("/score", json=body), 500))
    for method, path, r, want in responses:
        assert r.status_code == want, (method, path, r.text[:300])
        operation = schema[path][method]
        assert str(r.status_code) in operation.definition.raw["responses"], (method, path)
        operation.validate_response(r)  # raises naming what does not match
        seen.add((method, path, r.status_code))
    assert responses[2][2].json()["metrics"] == {"test_roc_auc": 0.8,
                                                 "cold_start_model_auc": None}
    assert {s for (_, p, s) in seen if p == "/score"} == {200, 400, 401, 413, 415, 422, 500}
