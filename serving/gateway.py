"""The ASGI gateway in front of the service: auth, limits, validation, safe errors.

Every request passes through :class:`Gateway` before BentoML sees it:

1. **Request id.** Each request gets one (``X-Request-ID``, echoed on every response,
   quoted in every error and log line about the request).
2. **Auth.** ``Authorization: Bearer <key>`` is compared in constant time with
   ``LEADSCORE_API_KEY`` on every path except health and docs. 401 otherwise.
3. **Body size.** More than ``max_body_bytes`` gets 413, whether the client announced it
   (``Content-Length``) or streamed it.
4. **Validation.** ``POST /score`` and ``POST /explain`` bodies are validated against the
   contract models here, so a malformed lead gets 422 naming ``leads[i].field`` (BentoML
   itself answers 400, and logs pydantic's message, which quotes the input: PII). More
   than ``max_batch`` leads gets 413.
5. **No stack traces out.** Any 5xx, from anywhere below, is replaced by a JSON
   :class:`~serving.contract.ErrorResponse` with the request id; the log gets the
   exception type and traceback, never the exception message (it may quote PII).

The gateway reads its settings from the running service instance, so it is configured
at start-up, not at import.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import logging
import re
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.contract import ExplainRequest, Readiness, ScoreRequest

__all__ = ["Gateway", "request_id", "error_body", "PUBLIC_PATHS"]

logger = logging.getLogger("leadscore.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("leadscore_request_id",
                                                                default="-")
"""The current request's id; set by the gateway, read by the service and the logs."""

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/", "/docs.json", "/schema.json",
                          "/favicon.ico", "/ui"})
"""Health and docs: no key needed, so probes and integrators reading the docs work."""
# The marketers' page (/ui) is static files and fake sample leads, so it is public; its
# calls to /score send the key the marketer pastes into the page.
_PUBLIC_PREFIXES = ("/static_content/", "/assets/", "/ui/")

_VALIDATED: dict[str, type[BaseModel]] = {"/score": ScoreRequest, "/explain": ExplainRequest}
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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

    # -- helpers -----------------------------------------------------------------

    @staticmethod
    def _service() -> Any | None:
        import bentoml

        try:
            return bentoml.get_current_service()
        except Exception:  # noqa: BLE001  (BentoMLException: not instantiated yet)
            return None

    @staticmethod
    async def _json(send: Send, status: int, body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
        payload = json.dumps(body).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.get().encode()),
                *(headers or []),
            ],
        })
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _authorized(scope: Scope, key: str) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
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

        if scope.get("method") in ("POST", "PUT", "PATCH"):
            body = await self._read_body(scope, receive, settings.max_body_bytes)
            if body is None:
                await self._json(send, 413, error_body(
                    "request body too large",
                    [f"the limit is {settings.max_body_bytes} bytes (LEADSCORE_MAX_BODY_BYTES)"],
                ))
                return
            model = _VALIDATED.get(path)
            if model is not None:
                problem = self._check(model, body, settings.max_batch)
                if problem is not None:
                    status, err, detail = problem
                    await self._json(send, status, error_body(err, detail))
                    return
            receive = _replay(body, receive)

        await self._call_safely(scope, receive, send)

    @staticmethod
    def _check(model: type[BaseModel], body: bytes, max_batch: int
               ) -> tuple[int, str, list[str]] | None:
        try:
            parsed = model.model_validate_json(body or b"{}")
        except ValidationError as exc:
            details = validation_details(exc)
            if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
                return 400, "the body is not valid JSON", details
            return 422, "invalid request", details
        n = len(getattr(parsed, "leads", ()))
        if n > max_batch:
            return 413, "too many leads", [
                f"leads: {n} leads in one request; the limit is {max_batch} "
                "(LEADSCORE_MAX_BATCH). Split the batch."
            ]
        return None

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
        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                if message["status"] >= 500:
                    # Whatever produced it, the client gets our shape, never a trace.
                    replaced = True
                    started = True
                    status = message["status"]
                    await self._json(send, status, error_body(
                        "service unavailable" if status == 503 else "internal error"))
                    return
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.get().encode()))
                message = {**message, "headers": headers}
            elif replaced:
                return
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:  # noqa: BLE001  (answered as a JSON 500, logged below)
            logger.error(
                "unhandled %s on %s [request %s]\n%s", type(exc).__name__, scope.get("path"),
                request_id.get(), "".join(traceback.format_tb(exc.__traceback__)),
            )
            if not started:
                await self._json(send, 500, error_body("internal error"))


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
