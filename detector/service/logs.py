"""structlog setup: JSON lines by default, readable console output for humans.

Event names are constants (``incident.opened``); context such as the request id is bound at the
edge. A last processor masks any value whose key looks like a secret, as a safety net.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

from detector.service.settings import LogFormat

_SECRET_HINTS = ("token", "secret", "password", "authorization", "signing_key", "database_url")


def _mask_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(hint in key.lower() for hint in _SECRET_HINTS):
            event[key] = "***"
    return event


REQUEST: ContextVar[tuple[str, str] | None] = ContextVar("stormwatch_request", default=None)
"""(request id, path) of the HTTP request being served, added to every line it logs."""


def _add_request(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """One context variable set per request rather than structlog's bound context: the
    webhook path sets it thousands of times a second and logs almost never."""
    request = REQUEST.get()
    if request is not None:
        event.setdefault("request_id", request[0])
        event.setdefault("path", request[1])
    return event


def configure_logging(log_format: LogFormat, level: str) -> None:
    """Configure structlog and the stdlib root logger (aiohttp, asyncpg) the same way."""
    numeric = logging.getLevelName(level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            _add_request,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Resolve stderr when logging, not when configuring: the stream may be replaced later.
        # One write per line: the engine process shares the stream, and print()'s separate
        # newline write could let the other process's line land in between.
        logger_factory=lambda *_: structlog.WriteLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
