"""Every replica's status page is current within a second of a public change committed on
another: the write notifies at commit and each replica rebuilds its snapshot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector.service.app import create_app
from detector.store import public_incidents
from detector.store.public_incidents import FirstNotice
from detector.web.context import SERVICES
from responders.statuspage.model import ComponentLevel, IncidentStatus
from tests.conftest import settings_for
from tests.fakes import FakeClock

pytestmark = pytest.mark.usefixtures("pager", "backup")


@pytest.fixture
async def replicas(database_url: str, rules_dir: Path) -> AsyncIterator[list[TestClient]]:
    """Two service instances on one database, neither running the engine."""
    clients = []
    for _ in range(2):
        app = create_app(settings_for(database_url, rules_dir), clock=FakeClock())
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
    try:
        await _listening(database_url, count=2)
        yield clients
    finally:
        for client in clients:
            await client.close()


async def _listening(database_url: str, count: int) -> None:
    """Wait until ``count`` sessions listen for status-page changes."""
    connection = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            listeners = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%statuspage%'"
            )
            if listeners >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the replicas never listened")
    finally:
        await connection.close()


async def _summary(client: TestClient) -> Any:
    response = await client.get("/api/v2/summary.json")
    assert response.status == 200
    return await response.json()


async def _within(seconds: float, client: TestClient, seen: Any) -> tuple[Any, float]:
    """The summary once ``seen(summary)`` holds, and how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        summary = await _summary(client)
        if seen(summary):
            return summary, time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not seen within {seconds}s: {await _summary(client)}")


async def test_a_write_on_one_replica_shows_on_the_other_within_a_second(
    replicas: list[TestClient],
) -> None:
    writer, reader = replicas
    services = writer.app[SERVICES]
    clock = services.clock
    assert (await _summary(reader))["incidents"] == []
    async with services.pool.acquire() as connection, connection.transaction():
        internal = await connection.fetchval(
            """INSERT INTO incidents (rule, group_key, group_labels, state, severity, title,
                 summary, component, opened_at, last_signal_at, updated_at)
               VALUES ('pool-exhausted', '{}', '{}', 'triggered', 'critical', 't', '',
                 'checkout', $1, $1, $1) RETURNING id""",
            clock.now(),
        )
        joined = await public_incidents.open_or_join(
            connection,
            internal,
            "checkout",
            ComponentLevel.MAJOR_OUTAGE,
            FirstNotice("Checkout is down", "Nobody can check out right now.", None),
            clock.now(),
        )

    opened, took = await _within(
        1.0, reader, lambda s: [i["name"] for i in s["incidents"]] == ["Checkout is down"]
    )

    assert opened["components"][0]["status"] == "major_outage"
    assert opened["status"]["indicator"] == "critical"
    assert took < 1.0
    async with services.pool.acquire() as connection, connection.transaction():
        await public_incidents.add_update(
            connection,
            joined.incident.id,
            IncidentStatus.RESOLVED,
            "Checkout works again.",
            None,
            clock.now(),
        )
    resolved, _ = await _within(1.0, reader, lambda s: s["incidents"] == [])
    assert resolved["components"][0]["status"] == "operational"
