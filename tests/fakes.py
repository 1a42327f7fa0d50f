"""Small real stand-ins used across tests: a clock to drive, an HTTP endpoint recording pages,
a channel recording the typed messages it is handed, a signal stage whose rule group fails."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from detector.domain.model import Signal
from detector.engine.correlation import Correlated, correlate
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.store.connection import Connection
from responders.messages import Message, MessageKind

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # Black Friday, 09:00 UTC


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


class PageReceiver:
    """A real HTTP server on 127.0.0.1 that records what channels POST to it.

    ``statuses`` are answered in order (then 200), to exercise retries and dead-letters; each
    answer waits ``delay`` seconds (a slow receiver), and a body ``hold`` picks waits until
    :meth:`let_go` (``holding`` is set meanwhile). ``times`` has each arrival's monotonic time.
    """

    def __init__(
        self,
        statuses: Iterable[int] = (),
        *,
        delay: float = 0.0,
        hold: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.hold = hold
        self.holding = asyncio.Event()
        self._let_go = asyncio.Event()
        self.times: list[float] = []
        self.requests: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[int] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> PageReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/page"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        status = self.statuses.pop(0) if self.statuses else 200
        async with self._arrived:
            self.times.append(time.monotonic())
            self.requests.append(body)
            self.bodies.append(raw)
            self.headers.append(dict(request.headers))
            self.answers.append(status)
            self._arrived.notify_all()
        if self.hold is not None and self.hold(body):
            self.holding.set()
            await self._let_go.wait()
        elif self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response({"ok": status < 300}, status=status)

    def let_go(self) -> None:
        """Answer the held requests (and those held from now on, at once)."""
        self._let_go.set()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``count`` requests arrived (event-driven, bounded by ``timeout``)."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.requests) >= count), timeout
            )
        return self.requests

    def delivered(self, event: str | None = None) -> list[dict[str, Any]]:
        """Bodies answered 2xx so far, optionally only one event kind."""
        return [
            body
            for body, status in zip(self.requests, self.answers, strict=True)
            if status < 300 and (event is None or body["event"] == event)
        ]


class RecordingChannel:
    """A stub channel: it delivers only ``kinds`` and keeps every message it is handed."""

    def __init__(self, name: str, kinds: Iterable[MessageKind]) -> None:
        self.name = name
        self.kinds = frozenset(kinds)
        self.sent: list[tuple[Message, str]] = []

    async def send(self, message: Message, idempotency_key: str) -> None:
        self.sent.append((message, idempotency_key))


class FailingGroup:
    """Applies rule groups as the signal stage does (``correlate``), except that ``rule``'s group
    fails ``times`` times, as a deadlock would; ``applied`` names the rule of every group tried.
    """

    def __init__(self, rule: str, times: int = 1) -> None:
        self.rule = rule
        self.failures_left = times
        self.applied: list[str] = []

    async def __call__(
        self,
        connection: Connection,
        rules: RuleSet,
        match: RuleMatch,
        signals: Sequence[Signal],
        now: datetime,
    ) -> Correlated:
        self.applied.append(match.rule.name)
        if match.rule.name == self.rule and self.failures_left > 0:
            self.failures_left -= 1
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return await correlate(connection, rules, match, signals, now)
