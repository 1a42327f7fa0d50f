"""The open-files limit the service asks for at start (``allow_open_files``); the e2e test in
``test_serve_process`` checks both real processes."""

from __future__ import annotations

import resource

import pytest
from structlog.testing import capture_logs

from detector.service import serve


def test_a_system_that_refuses_the_raise_is_told_about_not_crashed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As macOS refuses a soft limit past its per-process maximum, whatever the hard limit."""

    def refuse(_resource: int, _limits: tuple[int, int]) -> None:
        raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    with capture_logs() as logs:
        serve.allow_open_files()
    assert [(e["event"], e["limit"]) for e in logs] == [("service.few_open_files", 1024)]


def test_enough_already_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1_048_576, 1_048_576))
    monkeypatch.setattr(resource, "setrlimit", lambda _resource, limits: asked.append(limits))
    with capture_logs() as logs:
        serve.allow_open_files()
    assert (asked, logs) == ([], [])
