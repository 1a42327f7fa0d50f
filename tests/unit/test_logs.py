"""Log lines from libraries look like ours: one JSON object each in JSON mode, a traceback as
its ``exception`` field; readable lines in console mode."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest
import structlog

from detector.service.logs import configure_logging
from detector.service.settings import LogFormat


@pytest.fixture
def configured() -> Iterator[None]:
    """Undo what ``configure_logging`` changes process-wide once the test is over."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    sys.excepthook, threading.excepthook, sys.unraisablehook = hooks
    structlog.reset_defaults()


def _pool_floor_failure() -> None:
    """What asyncpg logs while it cannot reconnect: a warning with the exception."""
    try:
        socket.create_connection(("127.0.0.1", 1), timeout=5).close()  # nothing listens there
    except OSError:
        logging.getLogger("asyncpg.pool").warning(
            "Failed to restore the pool connection floor; retrying", exc_info=True
        )


@pytest.mark.usefixtures("configured")
class TestJsonMode:
    def test_a_library_warning_with_a_traceback_is_one_json_line(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(LogFormat.JSON, "info")
        _pool_floor_failure()
        [line] = capsys.readouterr().err.splitlines()
        event = json.loads(line)
        assert event["event"] == "Failed to restore the pool connection floor; retrying"
        assert (event["logger"], event["level"]) == ("asyncpg.pool", "warning")
        assert event["exception"].startswith("Traceback (most recent call last):")
        assert event["exception"].endswith("ConnectionRefusedError: [Errno 111] Connection refused")

    def test_warnings_and_uncaught_exceptions_in_threads_are_json_lines(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(LogFormat.JSON, "info")
        warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
        thread = threading.Thread(target=lambda: 1 / 0, name="worker")
        thread.start()
        thread.join()
        warned, crashed = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert warned["logger"] == "py.warnings"
        assert "DeprecationWarning: a library's deprecation" in warned["event"]
        assert (crashed["event"], crashed["thread"]) == ("thread.uncaught_exception", "worker")
        assert crashed["exception"].endswith("ZeroDivisionError: division by zero")

    def test_the_access_log_stays_quiet(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(LogFormat.JSON, "info")
        logging.getLogger("aiohttp.access").info("GET /metrics 200")
        assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("configured")
def test_console_mode_stays_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogFormat.CONSOLE, "info")
    _pool_floor_failure()
    first, *trace = capsys.readouterr().err.splitlines()
    assert "Failed to restore the pool connection floor; retrying" in first
    assert "asyncpg.pool" in first
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[-1] == "ConnectionRefusedError: [Errno 111] Connection refused"
