"""The ASGI gateway in front of the service: auth, limits, validation, safe errors.

Every request passes through :class:`Gateway` before BentoML sees it:

1. **Request id.** Each request gets one (``X-Request-ID``, echoed on every response,
   quoted in every error and log line about the request). BentoML's own
   ``X-BentoML-Request-ID`` (its tracing span, another value) is removed, so a response
   carries one id.
2. **Auth.** ``Authorization: Bearer <key>`` is compared in constant time with
   ``LEADSCORE_API_KEY`` on every path except health and docs. 401 otherwise, and for
   an empty token whatever the key.
3. **Content type.** ``POST /score`` and ``POST /explain`` take JSON: any other
   ``Content-Type`` gets 415 before BentoML sees the body (BentoML would parse a form or
   a multipart body, fail, and log the body, PII included, in a traceback; a multipart
   type without a boundary was a 500). A body with no ``Content-Type`` is read as JSON.
4. **Body size.** More than ``max_body_bytes`` gets 413, whether the client announced it
   (``Content-Length``) or streamed it.
5. **Validation.** ``POST /score`` and ``POST /explain`` bodies are validated against the
   contract models here, so a malformed lead gets 422 naming ``leads[i].field`` (BentoML
   itself answers 400, and logs pydantic's message, which quotes the input: PII). More
   than ``max_batch`` leads gets 413.
6. **One error shape.** Any error from below (BentoML's 404 and 405, any 5xx) that is
   not already a :class:`~serving.contract.ErrorResponse` is replaced by one with the
   same status and the request id, so no stack trace and no echo of the body gets out;
   the log gets the exception type and traceback, never the exception message (it may
   quote PII).
7. **The hot path.** A valid built-in ``POST /score`` is answered here: the request
   parsed in step 5 goes straight to the service's ``answer_score`` (the scoring core
   behind the coalescer) and the response model is serialised once. BentoML's handler
   would parse and validate the body a second time, resolve the API method's signature,
   and wrap the response, for nothing the contract needs (measured:
   ``benchmarks/serving_profile.py``). What operators rely on stays: BentoML's request
   metrics, access log and concurrency and timeout limits are middlewares outside this
   one, and the request id, auth, limits and error shape are this one's own.
   ``/explain`` and the spec contract's endpoints take their usual paths.
8. **Docs.** ``GET /docs`` (and ``/``) is an offline Swagger UI page, and
   ``GET /docs.json`` the contract of :func:`serving.openapi.contract_document`; both
   public.

The gateway reads its settings from the running service instance, so it is configured
at start-up, not at import.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import http
import json
import logging
import re
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.contract import ExplainRequest, Readiness, ScoreRequest, ScoreResponse
from serving.openapi import DOCS_HTML, contract_document

__all__ = ["Gateway", "request_id", "error_body", "PUBLIC_PATHS"]

logger = logging.getLogger("leadscore.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("leadscore_request_id",
                                                                default="-")
"""The current request's id; set by the gateway, read by the service and the logs."""

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/", "/docs", "/docs.json",
                          "/schema.json", "/favicon.ico", "/ui"})
"""Health and docs: no key needed, so probes and integrators reading the docs work."""
# The marketers' page (/ui) is static files and fake sample leads, so it is public; its
# calls to /score send the key the marketer pastes into the page.
_PUBLIC_PREFIXES = ("/static_content/", "/assets/", "/ui/")

_VALIDATED: dict[str, type[BaseModel]] = {"/score": ScoreRequest, "/explain": ExplainRequest}
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_JSON = "application/json"
_ERROR_KEYS = frozenset({"error", "detail", "request_id"})
# BentoML's tracing id: a second, different id on every response. Ours is the one.
_DROPPED_HEADERS = frozenset({b"x-bentoml-request-id", b"x-request-id"})


def error_body(error: str, detail: list[str] | None = None) -> dict[str, Any]:
    """The one error shape (``serving.contract.ErrorResponse``)."""
    return {"error": error, "detail": detail or [], "request_id": request_id.get()}


def _loc(loc: tuple[Any, ...]) -> str:
    """('leads', 3, 'created_at') -> 'leads[3].created_at'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_details(exc: ValidationError) -> list[str]:
    """One ``path: message`` line per error. The offending value is not echoed: the
    client knows what it sent, and it may be an email address."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        lines.append(f"{_loc(tuple(err['loc']))}: {err['msg']}")
    return lines


class Gateway:
    """ASGI middleware: request id, auth, body and batch limits, 422s, safe 5xx."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self._document: bytes | None = None
        self._document_key: str | None = None

    # -- helpers -----------------------------------------------------------------

    @staticmethod
    def _service() -> Any | None:
        import bentoml

        try:
            return bentoml.get_current_service()
        except Exception:  # noqa: BLE001  (BentoMLException: not instantiated yet)
            return None

    @classmethod
    async def _json(cls, send: Send, status: int, body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await cls._send(send, status, json.dumps(body).encode(), _JSON.encode(), headers)

    @staticmethod
    async def _send(send: Send, status: int, payload: bytes, content_type: bytes,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.get().encode()),
                *(headers or []),
            ],
        })
        await send({"type": "http.response.body", "body": payload})

    async def _contract(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/docs.json``: BentoML's document, rewritten into the contract (once per
        contract: a service that adopts its champion's spec documents that spec's fields)."""
        service = self._service()
        spec_contract = getattr(service, "spec_contract", None)
        key = None if spec_contract is None else spec_contract.feature_set.version
        if self._document is None or self._document_key != key:
            status, body = await _capture(self.app, {**scope, "method": "GET"}, receive)
            if status != 200:
                await self._json(send, 500, error_body("internal error"))
                return
            document = contract_document(json.loads(body), _package_version())
            if spec_contract is not None:
                _document_spec(document, spec_contract)
            self._document = json.dumps(document).encode()
            self._document_key = key
        await self._send(send, 200, self._document, _JSON.encode())

    @staticmethod
    def _authorized(scope: Scope, key: str) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return False
                return hmac.compare_digest(token.strip().encode(), key.encode())
        return False

    # -- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        token = request_id.set(given if _ID_RE.match(given) else uuid.uuid4().hex[:16])
        try:
            await self._handle(scope, receive, send)
        finally:
            request_id.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        service = self._service()
        if service is None:
            await self._json(send, 503, error_body("the service is starting"))
            return
        settings = service.settings

        if path == "/readyz":
            engine = service.lifecycle.engine
            ready = Readiness(
                status=service.lifecycle.status,
                scored_by="model" if engine.model else "rules",
                model_version=engine.model.version if engine.model else None,
            )
            await self._json(send, 200, ready.model_dump())
            return

        method = scope.get("method")
        if path in ("/", "/docs") and method in ("GET", "HEAD"):
            await self._send(send, 200, DOCS_HTML.encode(), b"text/html; charset=utf-8")
            return
        if path == "/docs.json" and method in ("GET", "HEAD"):
            await self._contract(scope, receive, send)
            return
        if path == "/ui/samples.json" and method in ("GET", "HEAD"):
            contract = getattr(service, "spec_contract", None)
            bundle = service.lifecycle.engine.model
            if contract is not None and bundle is not None:
                # The page's sample leads in the served spec's own fields and types.
                from datetime import UTC, datetime

                await self._json(send, 200, contract.samples(bundle.model, datetime.now(UTC)))
                return

        public = path in PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES)
        if not public and settings.api_key is not None and not self._authorized(
            scope, settings.api_key
        ):
            await self._json(
                send, 401,
                error_body("missing or wrong API key",
                           ["send the header 'Authorization: Bearer <LEADSCORE_API_KEY>'"]),
                [(b"www-authenticate", b'Bearer realm="leadscore"')],
            )
            return

        model = _VALIDATED.get(path) if method == "POST" else None
        if model is not None:
            media = _media_type(scope)
            if media is None:
                # No Content-Type: read as JSON, and tell BentoML so (it must not guess).
                scope = {**scope, "headers": [*scope.get("headers", ()),
                                              (b"content-type", _JSON.encode())]}
            elif media != _JSON:
                await self._json(send, 415, error_body("unsupported content type", [
                    "send the body as JSON with the header 'Content-Type: application/json'; "
                    f"got {media[:100]!r}"]))
                return

        if method in ("POST", "PUT", "PATCH"):
            body = await self._read_body(scope, receive, settings.max_body_bytes)
            if body is None:
                await self._json(send, 413, error_body(
                    "request body too large",
                    [f"the limit is {settings.max_body_bytes} bytes (LEADSCORE_MAX_BODY_BYTES)"],
                ))
                return
            contract = getattr(service, "spec_contract", None) if model is not None else None
            if contract is not None:
                # A spec's model: its CRM's own fields, validated and scored here (BentoML's
                # handler knows only the built-in contract).
                await self._spec(service, contract, path, body, send)
                return
            if model is not None:
                parsed, problem = self._check(model, body, settings.max_batch)
                if problem is not None:
                    status, err, detail = problem
                    await self._json(send, status, error_body(err, detail))
                    return
                answer = getattr(service, "answer_score", None) if path == "/score" else None
                if answer is not None:
                    await self._score(answer, parsed, send)
                    return
            receive = _replay(body, receive)

        await self._call_safely(scope, receive, send)

    async def _score(self, answer: Callable[[Any], Awaitable[tuple[int, dict[str, Any]]]],
                     request: Any, send: Send) -> None:
        """``POST /score`` of the built-in contract, answered here (see "The hot path")."""
        try:
            status, body = await answer(request)
            payload = (ScoreResponse.model_validate(body).model_dump_json().encode()
                       if status == 200 else json.dumps(body).encode())
        except Exception as exc:  # noqa: BLE001  (answered as a JSON 500, logged below)
            logger.error("unhandled %s on /score [request %s]\n%s", type(exc).__name__,
                         request_id.get(), "".join(traceback.format_tb(exc.__traceback__)))
            await self._json(send, 500, error_body("internal error"))
            return
        await self._send(send, status, payload, _JSON.encode())

    async def _spec(self, service: Any, contract: Any, path: str, body: bytes, send: Send) -> None:
        """``POST /score`` and ``POST /explain`` for a spec's model."""
        model = contract.request_model if path == "/score" else contract.explain_model
        request, problem = self._check(model, body, service.settings.max_batch)
        if problem is not None:
            status, err, detail = problem
            await self._json(send, status, error_body(err, detail))
            return
        parsed = json.loads(body)
        leads = parsed.get("leads", []) if path == "/score" else [parsed.get("lead")]
        if all(isinstance(lead, dict) and contract.missing_every_field(lead) for lead in leads):
            expected = contract.expected_fields()
            await self._json(send, 422, error_body("invalid request", [
                f"leads: no lead has any field of spec {contract.spec.name!r}; expected some "
                f"of {expected[:20]}{' ...' if len(expected) > 20 else ''} (the CRM's own "
                "column names). Unknown keys are ignored: check the mapping."]))
            return
        handler = service.score_spec if path == "/score" else service.explain_spec
        try:
            status, answer = await asyncio.to_thread(handler, request)
        except Exception as exc:  # noqa: BLE001  (answered as a JSON 500, logged below)
            logger.error("unhandled %s on %s [request %s]\n%s", type(exc).__name__, path,
                         request_id.get(), "".join(traceback.format_tb(exc.__traceback__)))
            status, answer = 500, error_body("internal error")
        await self._json(send, status, answer)

    @staticmethod
    def _check(model: type[BaseModel], body: bytes, max_batch: int
               ) -> tuple[BaseModel | None, tuple[int, str, list[str]] | None]:
        """``(request, None)`` for a valid body, ``(None, (status, error, detail))`` else."""
        try:
            parsed = model.model_validate_json(body or b"{}")
        except ValidationError as exc:
            details = validation_details(exc)
            if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
                return None, (400, "the body is not valid JSON", details)
            return None, (422, "invalid request", details)
        n = len(getattr(parsed, "leads", ()))
        if n > max_batch:
            return None, (413, "too many leads", [
                f"leads: {n} leads in one request; the limit is {max_batch} "
                "(LEADSCORE_MAX_BATCH). Split the batch."
            ])
        return parsed, None

    @staticmethod
    async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None as soon as it exceeds ``limit`` bytes."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _call_safely(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        held: Message | None = None  # an error's start, held until its body is complete
        chunks: list[bytes] = []

        async def guarded_send(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _DROPPED_HEADERS]
                headers.append((b"x-request-id", request_id.get().encode()))
                message = {**message, "headers": headers}
                if message["status"] >= 400:
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                status = held["status"]
                body = b"".join(chunks)
                if status < 500 and _is_error_shape(body):
                    await send(held)
                    await send({"type": "http.response.body", "body": body})
                else:
                    # BentoML's or Starlette's own error page, or any 5xx: our shape,
                    # never their body (it may quote the request or hold a trace).
                    await self._json(send, status, error_body(_reason(status)))
                held = None
                return
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:  # noqa: BLE001  (answered as a JSON 500, logged below)
            logger.error(
                "unhandled %s on %s [request %s]\n%s", type(exc).__name__, scope.get("path"),
                request_id.get(), "".join(traceback.format_tb(exc.__traceback__)),
            )
            if not started or held is not None:
                await self._json(send, 500, error_body("internal error"))


def _document_spec(document: dict[str, Any], contract: Any) -> None:
    """Put a spec's lead and activity models (the CRM's own field names) in the document."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    template = "#/components/schemas/{model}"
    lead = contract.lead_model.model_json_schema(by_alias=True, ref_template=template)
    for name, definition in lead.pop("$defs", {}).items():
        schemas["Activity" if name == "SpecActivity" else name] = definition
    schemas["Lead"] = json.loads(json.dumps(lead).replace(
        "#/components/schemas/SpecActivity", "#/components/schemas/Activity"))
    schemas["Lead"]["description"] = (
        f"A lead in the words of the CRM of spec {contract.spec.name!r}: its own field "
        "names and activity types. Unknown keys are ignored; a request in which no lead "
        "has any of these fields is a 422.")
    schemas.pop("SpecActivity", None)


def _reason(status: int) -> str:
    if status == 503:
        return "service unavailable"
    if status >= 500:
        return "internal error"
    try:
        return http.HTTPStatus(status).phrase.lower()
    except ValueError:
        return "request refused"


def _is_error_shape(body: bytes) -> bool:
    """Whether an error body from below is already an ErrorResponse (the service's 422)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and set(parsed) == _ERROR_KEYS


def _media_type(scope: Scope) -> str | None:
    """The request's media type, lower case and without parameters; None when absent."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("leadscore")
    except PackageNotFoundError:
        # A built Bento runs from its copy of the source, not an installed package.
        return "unknown (not installed as a package)"


async def _capture(app: Callable[..., Awaitable[None]], scope: Scope, receive: Receive
                   ) -> tuple[int, bytes]:
    """Call ``app`` and return its status and whole body instead of sending them."""
    status = 500
    chunks: list[bytes] = []

    async def collect(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, collect)
    return status, b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the already-read body once, then defers to the original."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
