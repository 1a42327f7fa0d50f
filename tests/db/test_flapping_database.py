"""A database that stops and starts again and again under a steady stream of alerts: nothing is
lost or opened twice, and once it is back for good every incident is open and every page is
sent and recorded within seconds (no claim waits out a long lease).

A real PostgreSQL of the test's own is stopped (fast shutdown) for a second, ten times, while
webhooks arrive at 25 a second; two engine replicas, each with the service's own pool and
wake-up listener, page a receiver that takes 0.3 s to answer, so stops catch sends in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer
from detector.engine.leases import TERM
from detector.ruleset.live import LiveRules
from detector.service.app import build_channels, channel_registry, connection_pool, create_app
from detector.service.clock import SystemClock
from detector.service.metrics import Metrics
from detector.store.wakeup import wake_on_intake
from detector.web.ack_links import LinkBuilder
from tests.conftest import RULES, alert, payload, settings_for
from tests.fakes import PageReceiver
from tests.stoppable_postgres import StoppablePostgres

CYCLES = 10
UP_S, DOWN_S = 1.5, 1.0
RATE = 25.0
SETTLED_WITHIN_S = 10.0
"""After the last start: every incident open, every page sent and recorded."""
RESENT_WITHIN_S = TERM.total_seconds() + DOWN_S + 5
"""A page sent again (its outcome could not be recorded) goes within this of its first send."""
LATE_S = 20.0
"""No first page comes later than this after its alert was answered 2xx: the outages, and a
claim whose answer a stop cut off waiting out its lease's term, perhaps twice running."""


@dataclass
class Load:
    """Webhooks with one new alert each, retried as Alertmanager does until answered 2xx."""

    client: TestClient
    answered: dict[str, float] = field(default_factory=dict)
    sent: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        while not stop.is_set():
            tasks.append(asyncio.create_task(self._deliver(f"f{self.sent}")))
            self.sent += 1
            await asyncio.sleep(max(0.0, started + self.sent / RATE - time.monotonic()))
        await asyncio.gather(*tasks)

    async def _deliver(self, cluster: str) -> None:
        body = payload(alert(cluster=cluster))
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                response = await self.client.post("/api/v1/alertmanager", json=body)
                if response.status == 200:
                    self.answered[cluster] = time.monotonic()
                    return
            await asyncio.sleep(0.2)
        pytest.fail(f"the alert for {cluster} was never answered 2xx")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[StoppablePostgres, str]]:
    server = StoppablePostgres(tmp_path / "pgdata")
    url = await server.start_fresh("shop")
    yield server, url
    await asyncio.to_thread(server.cleanup)


@pytest.fixture
async def slow_pager() -> AsyncIterator[PageReceiver]:
    receiver = await PageReceiver(delay=0.3).start()
    yield receiver
    await receiver.stop()


@contextlib.asynccontextmanager
async def engine_replica(
    url: str, rules: Path, session: aiohttp.ClientSession
) -> AsyncIterator[Engine]:
    """An engine as the service runs it: the service's pool, cycling, woken by NOTIFY."""
    clock = SystemClock()
    async with connection_pool(url, 8) as pool:
        registry = channel_registry(session)
        live = LiveRules(rules, lambda r: build_channels(r, registry), clock.now)
        links = LinkBuilder("https://sw.example", b"k", timedelta(hours=1), clock)
        engine = Engine(
            pool,
            lambda: live.routes,
            Deliverer(links, random.Random()),
            clock,
            Metrics(),
            related_window=timedelta(0),  # hundreds of one component's incidents: not the point
        )
        loops = [
            asyncio.create_task(engine.run()),
            asyncio.create_task(wake_on_intake(url, engine.signals_stored)),
        ]
        try:
            yield engine
        finally:
            engine.stop()
            loops[1].cancel()
            await asyncio.gather(*loops, return_exceptions=True)


class TestFlappingDatabase:
    async def test_incidents_and_pages_within_seconds_of_the_last_start(
        self,
        tmp_path: Path,
        database: tuple[StoppablePostgres, str],
        slow_pager: PageReceiver,
        backup: PageReceiver,
    ) -> None:
        server, url = database
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "shop.yml").write_text(
            RULES.format(pager_url=slow_pager.url, backup_url=backup.url)
        )
        intake = TestClient(TestServer(create_app(settings_for(url, rules)), host="127.0.0.1"))
        await intake.start_server()
        stop = asyncio.Event()
        load = Load(intake)
        try:
            async with (
                aiohttp.ClientSession() as session,
                engine_replica(url, rules, session),
                engine_replica(url, rules, session),
            ):
                loading = asyncio.create_task(load.run(stop))
                for _ in range(CYCLES):
                    await asyncio.sleep(UP_S)
                    await server.stop()
                    await asyncio.sleep(DOWN_S)
                    await server.start()
                back = time.monotonic()
                await asyncio.sleep(2)
                stop.set()
                await loading
                settled = await _settled(url, len(load.answered), back + SETTLED_WITHIN_S)
        finally:
            stop.set()
            await intake.close()

        first: dict[str, float] = {}
        for at, body in zip(slow_pager.times, slow_pager.requests, strict=True):
            first.setdefault(body["incident"]["group"]["cluster"], at)
        assert sorted(first) == sorted(load.answered), "every alert answered 2xx was paged"
        late = {
            c: first[c] - load.answered[c]
            for c in load.answered
            if first[c] - load.answered[c] > LATE_S
        }
        assert late == {}, "first pages later than the outages explain"
        assert settled - back < SETTLED_WITHIN_S
        sends: dict[str, list[float]] = {}
        for at, headers in zip(slow_pager.times, slow_pager.headers, strict=True):
            sends.setdefault(headers["Idempotency-Key"], []).append(at)
        again = {
            key: round(times[-1] - times[0], 1) for key, times in sends.items() if len(times) > 1
        }
        assert all(gap < RESENT_WITHIN_S for gap in again.values()), f"sent again late: {again}"


async def _settled(url: str, alerts: int, deadline: float) -> float:
    """When the database holds one incident per alert and no page waits (monotonic time)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            connection = await asyncpg.connect(url)
            try:
                incidents = await connection.fetchval("SELECT count(*) FROM incidents")
                waiting = await connection.fetchval(
                    "SELECT count(*) FROM outbox WHERE state = 'pending'"
                )
            finally:
                await connection.close()
            if incidents == alerts and waiting == 0:
                return time.monotonic()
        await asyncio.sleep(0.2)
    pytest.fail(f"not settled {SETTLED_WITHIN_S:.0f} s after the database came back")
