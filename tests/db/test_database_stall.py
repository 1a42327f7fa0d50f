"""A database that stops answering without closing its connections (a frozen VM, a partition):
the webhook and readiness answer 503 in bounded time instead of hanging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector.service.app import create_app
from tests.conftest import alert, payload, settings_for
from tests.fakes import FakeClock
from tests.pg_proxy import PostgresProxy

INTAKE_TIMEOUT = timedelta(milliseconds=500)
"""Short, so the stall costs the test half a second rather than the default ten."""


@pytest.fixture
async def proxied_url(
    database_url: str, pool: asyncpg.Pool
) -> AsyncIterator[tuple[str, PostgresProxy]]:
    """The test database reached through a PostgresProxy (``pool`` has migrated it)."""
    proxy = await PostgresProxy(database_url).start()
    yield proxy.url, proxy
    await proxy.stop()


async def test_stalled_database_answers_503_in_bounded_time(
    proxied_url: tuple[str, PostgresProxy], rules_dir: Path
) -> None:
    url, proxy = proxied_url
    settings = settings_for(url, rules_dir, intake_timeout=INTAKE_TIMEOUT)
    app = create_app(settings, clock=FakeClock())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        webhook = payload(alert(cluster="eu-1"))
        assert (await client.post("/api/v1/alertmanager", json=webhook)).status == 200
        proxy.flowing.clear()
        # Bounded well below the default timeout, so this fails if the setting were ignored.
        stalled, ready = await asyncio.wait_for(
            asyncio.gather(
                client.post("/api/v1/alertmanager", json=payload(alert(cluster="eu-2"))),
                client.get("/readyz"),
            ),
            5,
        )
        assert (stalled.status, ready.status) == (503, 503)
        assert (await stalled.json())["error"].startswith("database unavailable")
        proxy.flowing.set()
        assert (await client.post("/api/v1/alertmanager", json=webhook)).status == 200
    finally:
        proxy.flowing.set()
        await client.close()
