"""The service's OpenAPI document as the API contract, and the page that shows it.

BentoML derives a document from the service's pydantic models (``/docs.json``), but as
BentoML writes it, it is not the contract an integrator can code against: it declares
no security scheme, lists BentoML's own 400/404/500 bodies (which the gateway never lets
out), none of the 401/413/415/422/503 the gateway answers, shows version ``None``, and
carries BentoML's README boilerplate with remote badges. :func:`contract_document`
rewrites it into what the API really does: every status each operation can return,
each with :class:`~serving.contract.ErrorResponse` and an example, the bearer-key
scheme, and the package version. ``tests/serving/test_openapi.py`` validates real
responses of every status against it.

:data:`DOCS_HTML` is the docs page at ``/docs`` (and ``/``): Swagger UI from BentoML's
bundled static files only, so it works offline and loads no tag manager or badge.
"""

from __future__ import annotations

import copy
from typing import Any

from features.schema import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from serving.contract import BATCH_POLICY, CAUSAL_NOTE, ErrorResponse, Readiness

__all__ = ["contract_document", "DOCS_HTML", "DESCRIPTION"]

DESCRIPTION = f"""\
Lead scoring for CRMs: calibrated propensity, grade, route and plain-language reasons.

**Authentication.** Every operation except the health endpoints needs the header
`Authorization: Bearer <key>`, where the key is the server's `LEADSCORE_API_KEY`.
A missing, empty or wrong key gets 401.

**Requests.** `POST` bodies are JSON, sent with `Content-Type: application/json`
(a body with no Content-Type is read as JSON). Any other content type gets 415.
Bodies over the size limit (`LEADSCORE_MAX_BODY_BYTES`) and batches of more than
`LEADSCORE_MAX_BATCH` leads get 413.

**Errors.** Every error, whatever its status, has the same shape (`ErrorResponse`):
`error` (a sentence), `detail` (one line per problem, e.g. `leads[3].created_at: ...`)
and `request_id`, also sent as the `X-Request-ID` header: quote it when reporting a
problem. No error carries a stack trace or echoes a lead's data.

**Times.** Every time is ISO 8601 with a UTC offset, from {EARLIEST_TIMESTAMP.year} to
{LATEST_TIMESTAMP.year - 1} (the data contract's range); any other gets 422.

**Batches.** {BATCH_POLICY}

**Fit, engagement and the matrix.** Every result carries `fit` (who the lead is) and
`engagement` (what it did), each a 0-100 score (its percentile among the model's
training leads), a level (`high`/`low`) and its part in log-odds: base value + fit part
+ engagement part = the model's raw margin, exactly (each part sums its features' exact
TreeSHAP contributions; an interaction between a fit and an engagement feature is shared
between them the Shapley way). `matrix_route` routes on the two levels: `sales`,
`targeted_nurture` (fit high, engagement low), `review` (fit low, engagement high) or
`recycle`.

**Next actions and decay, on request.** `"actions": N` returns, per lead, the N
actionable activities (a demo request, a webinar, a pricing visit; a spec's kinds marked
`actionable`) that would raise its score most if one happened now, with the new score
and grade. {CAUSAL_NOTE} `"decay": true` returns the probability and grade at +7, +14
and +30 days if nothing new happens, and the first day its grade would drop. Both cost
predictions and are off by default.
"""

_SCHEME = "bearerAuth"
_PUBLIC = ("/healthz", "/livez", "/readyz")

_ERRORS: dict[str, tuple[str, str, list[str]]] = {
    # status: (OpenAPI description, example error, example detail)
    "400": ("The body is not valid JSON.", "the body is not valid JSON",
            ["body: Invalid JSON: expected value at line 1 column 1"]),
    "401": ("Missing, empty or wrong API key.", "missing or wrong API key",
            ["send the header 'Authorization: Bearer <LEADSCORE_API_KEY>'"]),
    "413": ("The body or the batch is too large.", "too many leads",
            ["leads: 1200 leads in one request; the limit is 1000 (LEADSCORE_MAX_BATCH). "
             "Split the batch."]),
    "415": ("The body is not sent as JSON.", "unsupported content type",
            ["send the body as JSON with the header 'Content-Type: application/json'; "
             "got 'application/x-www-form-urlencoded'"]),
    "422": ("A lead breaks the contract; every bad field is listed and nothing is scored.",
            "invalid request", ["leads[3].created_at: Input should be a valid datetime"]),
    "500": ("An unexpected failure; the request id finds it in the server log.",
            "internal error", []),
    "503": ("The service is starting or cannot answer yet.", "the service is starting", []),
}

_OPERATION_ERRORS = {
    ("/score", "post"): ("400", "401", "413", "415", "422", "500", "503"),
    ("/explain", "post"): ("400", "401", "413", "415", "422", "500", "503"),
    ("/model", "get"): ("401", "500", "503"),
    ("/metrics", "get"): ("401", "500", "503"),
    ("/healthz", "get"): ("503",),
    ("/livez", "get"): ("503",),
    ("/readyz", "get"): ("503",),
}

_DESCRIPTIONS = {
    "/healthz": "Liveness: 200 with an empty body while the process is up. Public.",
    "/livez": "Liveness: 200 with an empty body while the process is up. Public.",
    "/readyz": "Readiness: 'ready' with a model, 'degraded' when the rules answer "
               "everything. Public.",
    "/metrics": "Prometheus metrics (text format): BentoML's request counts and durations, "
                "and leadscore's counts of leads by who answered. Needs the key.",
}

_TAGS = [
    {"name": "Service APIs", "description": "Scoring and explanations."},
    {"name": "Infrastructure", "description": "Health, readiness and metrics."},
]


def _error_response(status: str) -> dict[str, Any]:
    description, error, detail = _ERRORS[status]
    return {
        "description": description,
        "headers": {"X-Request-ID": {"description": "The request's id, as in the body.",
                                     "schema": {"type": "string"}}},
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorResponse"},
            "example": {"error": error, "detail": detail, "request_id": "3f2c9a1b7d4e5f60"},
        }},
    }


def _nullable(node: Any) -> Any:
    """JSON Schema's ``anyOf: [..., {type: null}]`` (pydantic's output) as OpenAPI 3.0's
    ``nullable: true``: the document says 3.0, whose schemas have no null type."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            node.update(rest[0])
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    return node


def _schema(model: Any) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def contract_document(bentoml_spec: dict[str, Any], version: str) -> dict[str, Any]:
    """The API contract: BentoML's document with what the gateway really answers."""
    doc = copy.deepcopy(bentoml_spec)
    doc["info"] = {"title": "leadscore", "version": version, "description": DESCRIPTION}
    doc["tags"] = _TAGS
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorResponse"] = _schema(ErrorResponse)
    schemas["Readiness"] = _schema(Readiness)
    components["securitySchemes"] = {_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "The server's LEADSCORE_API_KEY, sent as 'Authorization: Bearer <key>'.",
    }}
    doc["security"] = [{_SCHEME: []}]

    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            errors = _OPERATION_ERRORS.get((path, method))
            if errors is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in [s for s in responses if s != "200"]:
                del responses[status]  # BentoML's own error bodies: the gateway's replace them
            for status in errors:
                responses[status] = _error_response(status)
            if path in _DESCRIPTIONS:
                operation["description"] = _DESCRIPTIONS[path]
            if path in _PUBLIC:
                operation["security"] = []
            if path == "/readyz":
                responses["200"] = {"description": "Ready or degraded.", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}
            elif path == "/metrics":
                responses["200"] = {"description": "Prometheus text format.",
                                    "content": {"text/plain": {"schema": {"type": "string"}}}}

    # BentoML's own error and task schemas are referenced by nothing once replaced.
    used = _refs(doc["paths"])
    while True:
        more = used | set().union(*(_refs(schemas[name]) for name in used if name in schemas))
        if more == used:
            break
        used = more
    for name in [n for n in schemas if n not in used]:
        del schemas[name]
    return _nullable(doc)


DOCS_HTML = """\
<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>leadscore API</title>
    <link rel="stylesheet" type="text/css" href="/static_content/swagger-ui.css" />
    <link rel="icon" type="image/png" href="/static_content/favicon-light-32x32.png" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="/static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="/static_content/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""
"""Swagger UI from BentoML's bundled files; its initializer loads ``./docs.json``, which
resolves to ``/docs.json`` from both ``/`` and ``/docs``."""
