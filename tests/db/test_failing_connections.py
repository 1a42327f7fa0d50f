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
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from detector.service.app import create_app
from tests.conftest import alert, payload, settings_for
from tests.fakes import FakeClock
from tests.pg_proxy import PostgresProxy


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
