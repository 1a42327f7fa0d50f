"""The edge of every request: request id, API token, and errors as JSON bodies naming the field."""

from __future__ import annotations

import hmac
import itertools
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import SecretStr

from detector.service.logs import REQUEST
from detector.store.connection import CONNECTION_LOST, StatementError

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, field: str | None = None, **extra: Any) -> web.Response:
    """A JSON error: ``{"error": ..., "field": ...}`` plus any details."""
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return web.json_response(body, status=status)


def check_bearer(request: web.Request, token: SecretStr | None) -> web.Response | None:
    """None when the request may pass; a 401 when a token is configured and not presented."""
    if token is None:
        return None
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected):
        return None
    return error(401, "missing or wrong bearer token", field="Authorization")


def bad_request(message: str, field: str) -> web.HTTPBadRequest:
    """A 400 exception with the JSON error body, for raising from deep inside a handler."""
    return web.HTTPBadRequest(
        text=json.dumps({"error": message, "field": field}), content_type="application/json"
    )


def int_param(value: str, field: str, minimum: int = 1, maximum: int = 1 << 62) -> int:
    """Parse an integer parameter or raise a 400 naming it."""
    try:
        number = int(value)
    except ValueError:
        raise bad_request("must be an integer", field) from None
    if not minimum <= number <= maximum:
        raise bad_request(f"must be between {minimum} and {maximum}", field)
    return number


ACTOR_HEADER = "X-Stormwatch-Actor"
"""Names the person behind an API call (a chat bot, a script) when its body does not."""


def actor(request: web.Request, named: str | None) -> str:
    """Who acts: the name the body gives, else the ``X-Stormwatch-Actor`` header, else ``api``."""
    header = request.headers.get(ACTOR_HEADER, "").strip()[:200]
    return named or header or "api"


_REQUEST_IDS = itertools.count(1)
_PROCESS_TAG = secrets.token_hex(3)
WEBHOOK_PATH = "/api/v1/alertmanager"


def edge(api_token: Callable[[web.Request], SecretStr | None]) -> Any:
    """The one middleware every request passes: a request id bound to its log lines, the API
    token on ``/api/v1`` (the webhook has its own), and errors as JSON instead of HTML."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        request_id = request.headers.get("X-Request-Id") or f"{_PROCESS_TAG}-{next(_REQUEST_IDS)}"
        scope = REQUEST.set((request_id, path))
        try:
            denied = None
            if path.startswith("/api/v1/") and path != WEBHOOK_PATH:
                denied = check_bearer(request, api_token(request))
            response = denied or await _json_errors(request, handler)
        finally:
            REQUEST.reset(scope)
        response.headers["X-Request-Id"] = request_id
        return response

    return middleware


_UNAVAILABLE_CLASSES = ("08", "57")  # connection exceptions; operator intervention (shutdown)
_READ_ONLY = "25006"  # a failover left us on a standby


def _unavailable(err: StatementError) -> bool:
    state = str(getattr(err, "sqlstate", "") or "")
    return state.startswith(_UNAVAILABLE_CLASSES) or state == _READ_ONLY


async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a JSON body: a client that scripts against the API (or Alertmanager)
    never has to parse aiohttp's HTML or plain-text pages."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        if exc.status == web.HTTPRequestEntityTooLarge.status_code:
            return error(exc.status, exc.text or exc.reason, field="body")
        return error(exc.status, exc.reason)
    except Exception as err:
        return _error_for(err)


def _error_for(err: Exception) -> web.Response:
    """The answer to an exception a handler let through (called while it is handled)."""
    if isinstance(err, CONNECTION_LOST) or (isinstance(err, StatementError) and _unavailable(err)):
        log.warning("database.unavailable", error=type(err).__name__)
        return error(503, "database unavailable, try again")
    if isinstance(err, RequestPayloadError):
        return error(
            400, "body could not be read (broken Content-Encoding or cut short)", field="body"
        )
    log.exception("request.failed")
    return error(500, "internal error; the log has the details under this request's id")
