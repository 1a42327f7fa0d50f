"""structlog setup: JSON lines by default, readable console output for humans.

Event names are constants (``incident.opened``); context such as the request id is bound at the
edge. A last processor masks any value whose key looks like a secret, as a safety net. Records
of the standard library's logging (asyncpg, aiohttp, asyncio, warnings) and uncaught exceptions
go through the same processors, so in JSON mode every line the process writes is one JSON
object, a traceback included (as its ``exception`` field).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import structlog
from structlog.typing import Processor

from detector.service.settings import LogFormat

_SECRET_HINTS = ("token", "secret", "password", "authorization", "signing_key", "database_url")

log = structlog.get_logger(__name__)


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


_SHARED: list[Processor] = [
    _add_request,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    _mask_secrets,
]
"""What every line goes through before it is rendered, ours and the standard library's."""


class _StderrHandler(logging.Handler):
    """Writes each formatted record to whatever ``sys.stderr`` is at the time, in one write
    (see ``configure_logging``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging's own convention for a failed emit
            self.handleError(record)


def configure_logging(log_format: LogFormat, level: str) -> None:
    """Configure structlog and the standard library's logging (aiohttp, asyncpg) alike."""
    numeric = logging.getLevelName(level.upper())
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format is LogFormat.JSON
        # Plain tracebacks: the default (rich, with every frame's locals) can take seconds per
        # error on the event loop, during an outage when errors come fast, and would print
        # whatever secrets a frame holds.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*_SHARED, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Resolve stderr when logging, not when configuring: the stream may be replaced later.
        # One write per line: the engine process shares the stream, and print()'s separate
        # newline write could let the other process's line land in between.
        logger_factory=lambda *_: structlog.WriteLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(renderer, numeric)
    _route_uncaught_exceptions()


def _route_standard_logging(renderer: Processor, level: int) -> None:
    """Render the standard library's records like ours, with the logger's name added; warnings
    become records too. Configuring again replaces the handler rather than adding one."""
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_SHARED],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)


def _route_uncaught_exceptions() -> None:
    """Log what Python would print as a bare traceback: an uncaught exception, in the main
    thread or another, and one raised where nothing can catch it (a finaliser)."""

    def uncaught(
        kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        log.critical("process.uncaught_exception", exc_info=(kind, error, trace))

    def in_thread(args: threading.ExceptHookArgs) -> None:
        if not isinstance(args.exc_value, SystemExit | None):  # SystemExit ends a thread quietly
            thread = args.thread.name if args.thread else None
            log.error("thread.uncaught_exception", thread=thread, exc_info=args.exc_value)

    def unraisable(args: sys.UnraisableHookArgs) -> None:
        message = args.err_msg or "Exception ignored in"
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        log.error("python.unraisable", message=message, object=repr(args.object), exc_info=exc_info)

    sys.excepthook = uncaught
    threading.excepthook = in_thread
    sys.unraisablehook = unraisable
