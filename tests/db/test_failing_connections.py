"""Connections that fail around the work done on them: what a stage claimed is still sent or
fired, and intake still answers at once.

Both stage what PostgreSQL does when it stops: every session gets a ``FATAL`` (terminating
connection due to administrator command) and is closed. Giving a connection back to the pool
then fails after the claim on it committed; and a statement sent between the ``FATAL`` and the
close finds asyncpg's protocol in a state it cannot leave (``InternalClientError``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector.service.app import create_app
from tests.conftest import alert, engine_on, payload, settings_for, store_alerts
from tests.fakes import FakeClock, PageReceiver
from tests.pg_proxy import PostgresProxy


class ReleaseFails:
    """A pool whose connections cannot be given back while ``failing``: each is returned to
    the real pool, then the return raises as when the server closed it meanwhile."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.failing = True
        self.failures = 0

    def acquire(self) -> _Borrowed:
        return _Borrowed(self)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        await self._pool.release(connection, timeout=timeout)
        if self.failing:
            self.failures += 1
            raise asyncpg.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation: "
                "terminating connection due to administrator command"
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class _Borrowed:
    """``pool.acquire()`` as asyncpg's: awaitable, or an ``async with`` block."""

    def __init__(self, pool: ReleaseFails) -> None:
        self._pool = pool
        self._connection: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._pool._pool.acquire().__await__()

    async def __aenter__(self) -> Any:
        self._connection = await self
        return self._connection

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        await self._pool.release(self._connection)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class TestReleaseFailsAfterAClaim:
    async def test_claimed_pages_and_timers_go_out_in_the_same_cycle(
        self,
        pool: asyncpg.Pool,
        rules_dir: Path,
        session: aiohttp.ClientSession,
        pager: PageReceiver,
        backup: PageReceiver,
    ) -> None:
        clock, failing = FakeClock(), ReleaseFails(pool)
        engine = engine_on(failing, rules_dir, session, clock)
        await store_alerts(pool, clock, alert(cluster="eu-1"), alert(cluster="eu-2"))

        await engine.run_once()  # every connection's return fails, from the first claim on
        assert sorted(p["incident"]["group"]["cluster"] for p in pager.delivered()) == [
            "eu-1",
            "eu-2",
        ]
        clock.advance(timedelta(minutes=5))
        await engine.run_once()
        assert len(backup.delivered("triggered")) == 2, "both escalations fired and were sent"

        assert failing.failures > 0
        states = await pool.fetch("SELECT state, count(*) AS n FROM outbox GROUP BY state")
        assert {row["state"]: row["n"] for row in states} == {"delivered": 4}
        fired = await pool.fetchval("SELECT count(*) FROM timers WHERE fired_at IS NOT NULL")
        assert fired == 2


async def _terminate_sessions(pool: asyncpg.Pool) -> None:
    """End every other session on the test database, as a server shutdown does, and wait until
    they are gone (each sent its FATAL before it exited)."""
    async with pool.acquire() as connection:
        ended = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        pids = [row["pid"] for row in ended]
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids
        )
        for _ in range(100):
            if not await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
            ):
                break
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # the proxy has passed the FATAL on


class LingeringProxy(PostgresProxy):
    """Passes the server's bytes on at once but its close only ``linger`` seconds later, as
    a proxy or a load balancer between the service and PostgreSQL may."""

    def __init__(self, database_url: str, linger: float) -> None:
        super().__init__(database_url)
        self._linger = linger

    async def _closed(self, sink: asyncio.StreamWriter) -> None:
        await asyncio.sleep(self._linger)
        await super()._closed(sink)


class TestAServerGoodbyeBeforeItsClose:
    async def test_intake_answers_503_at_once_and_then_stores_again(
        self, database_url: str, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        proxy = await LingeringProxy(database_url, linger=3.0).start()
        app = create_app(settings_for(proxy.url, rules_dir), clock=FakeClock())
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            webhook = payload(alert(cluster="eu-1"))
            assert (await client.post("/api/v1/alertmanager", json=webhook)).status == 200
            await _terminate_sessions(pool)  # their FATAL arrives; their close waits
            started = time.monotonic()
            fresh = payload(alert(cluster="eu-2"))  # not a resend: that is answered from memory
            answered = await client.post("/api/v1/alertmanager", json=fresh)
            assert answered.status == 503
            assert time.monotonic() - started < 2, "answered at once, not after the timeout"
            retried = payload(alert(cluster="eu-3"))
            for _ in range(20):  # as Alertmanager retries; broken connections are dropped
                started = time.monotonic()
                again = await client.post("/api/v1/alertmanager", json=retried)
                assert time.monotonic() - started < 2
                if again.status == 200:
                    break
            assert again.status == 200
        finally:
            await client.close()
            await proxy.stop()
