"""Durability across replicas and restarts, against one real PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from detector.engine import delivery as delivery_stage
from detector.engine.cycle import Engine
from detector.intake.alertmanager import parse_payload, to_signals
from detector.service.app import create_app
from detector.service.metrics import Metrics
from detector.store import migrate as migrations
from detector.store import signals as inbox
from detector.store.connection import init_connection
from detector.web.context import SERVICES
from tests.conftest import (
    LAG_TOO,
    POOL_NAME,
    RULES,
    alert,
    engine_on,
    payload,
    settings_for,
    store_alerts,
)
from tests.fakes import FakeClock, PageReceiver

INCIDENTS = 40


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


Replica = Callable[..., Awaitable[Engine]]
"""Builds an engine on ``clock`` (and ``metrics``, when given)."""


@pytest.fixture
async def replica(
    database_url: str, rules_dir: Path, session: aiohttp.ClientSession
) -> AsyncIterator[Replica]:
    """Builds engines with their own connection pools, as separate processes would have."""
    pools: list[asyncpg.Pool] = []

    async def build(clock: FakeClock, metrics: Metrics | None = None) -> Engine:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, init=init_connection)
        pools.append(pool)
        return engine_on(pool, rules_dir, session, clock, metrics)

    yield build
    for pool in pools:
        await pool.close()


class TestTwoReplicas:
    async def test_timers_fire_and_pages_go_out_once(
        self,
        pool: asyncpg.Pool,
        replica: Replica,
        pager: PageReceiver,
        backup: PageReceiver,
    ) -> None:
        clock = FakeClock()
        first, second = [await replica(clock) for _ in range(2)]
        await store_alerts(pool, clock, *(alert(cluster=f"c{n}") for n in range(INCIDENTS)))
        for _ in range(3):
            await asyncio.gather(first.run_once(), second.run_once())
        clock.advance(timedelta(minutes=6))
        for _ in range(3):
            await asyncio.gather(first.run_once(), second.run_once())

        opened = Counter(page["incident"]["id"] for page in pager.delivered("triggered"))
        escalated = Counter(page["incident"]["id"] for page in backup.delivered("triggered"))
        assert len(opened) == INCIDENTS
        assert set(opened.values()) == {1}
        assert len(escalated) == INCIDENTS
        assert set(escalated.values()) == {1}
        fired = await pool.fetch(
            "SELECT outcome, count(*) AS n FROM timers WHERE fired_at IS NOT NULL GROUP BY outcome"
        )
        assert {row["outcome"]: row["n"] for row in fired} == {"escalated": INCIDENTS}
        pending = await pool.fetchval("SELECT count(*) FROM outbox WHERE state <> 'delivered'")
        assert pending == 0

    async def test_concurrent_intake_of_the_same_alerts_opens_one_incident(
        self, pool: asyncpg.Pool, replica: Replica, pager: PageReceiver
    ) -> None:
        clock = FakeClock()
        first, second = [await replica(clock) for _ in range(2)]
        same = alert(cluster="eu-1")
        await asyncio.gather(*(store_alerts(pool, clock, same) for _ in range(10)))
        await asyncio.gather(first.run_once(), second.run_once(), first.run_once())
        assert await pool.fetchval("SELECT count(*) FROM incidents") == 1
        assert await pool.fetchval("SELECT count(*) FROM signals") == 1
        assert len(pager.requests) == 1


class TestRestart:
    async def test_escalation_timer_survives_a_restart(
        self, database_url: str, rules_dir: Path, pager: PageReceiver, backup: PageReceiver
    ) -> None:
        clock = FakeClock()
        settings = settings_for(database_url, rules_dir)
        client = TestClient(TestServer(create_app(settings, clock=clock), host="127.0.0.1"))
        await client.start_server()
        await client.post("/api/v1/alertmanager", json=payload(alert(cluster="eu-1")))
        await client.app[SERVICES].engine.run_once()
        await client.close()
        assert len(pager.requests) == 1

        clock.advance(timedelta(minutes=5))
        restarted = TestClient(TestServer(create_app(settings, clock=clock), host="127.0.0.1"))
        await restarted.start_server()
        try:
            await restarted.app[SERVICES].engine.run_once()
        finally:
            await restarted.close()
        [page] = backup.delivered("triggered")
        assert page["escalation_step"] == 1

    async def test_migrations_apply_once(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as connection:
            assert await migrations.migrate(connection) == []
            versions = await connection.fetch("SELECT version FROM schema_migrations")
        assert [row["version"] for row in versions] == [v for v, _ in migrations.migration_files()]


class TestDeliveryLease:
    async def test_a_send_that_outlasts_its_lease_is_not_recorded_twice(
        self, pool: asyncpg.Pool, replica: Replica, rules_dir: Path, backup: PageReceiver
    ) -> None:
        arrived, release = asyncio.Event(), asyncio.Event()
        answered: list[int] = []

        async def slow_first(request: web.Request) -> web.Response:
            answered.append(len(answered))
            if len(answered) == 1:
                arrived.set()
                await release.wait()
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/page", slow_first)
        async with TestServer(app, host="127.0.0.1") as server:
            url = str(server.make_url("/page"))
            (rules_dir / "shop.yml").write_text(RULES.format(pager_url=url, backup_url=backup.url))
            clock = FakeClock()
            first, second = await replica(clock), await replica(clock)
            await store_alerts(pool, clock, alert(cluster="eu-1"))
            stuck = asyncio.create_task(first.run_once())
            await asyncio.wait_for(arrived.wait(), 10)
            clock.advance(delivery_stage.LEASE + timedelta(seconds=1))
            taken_over = await second.run_once()
            release.set()
            late = await stuck

        assert [d.outcome for d in taken_over.deliveries] == ["delivered"]
        assert [d.outcome for d in late.deliveries] == ["lease_lost"]
        assert len(answered) == 2
        kinds = await pool.fetch("SELECT kind FROM timeline WHERE kind LIKE 'page.%'")
        assert [row["kind"] for row in kinds] == ["page.delivered"]


class TestBacklogGauges:
    async def test_every_replica_shows_what_waits_and_since_when(
        self, pool: asyncpg.Pool, replica: Replica, rules_dir: Path, backup: PageReceiver
    ) -> None:
        """One replica hangs sending a page, holding it leased; an alert whose rule group keeps
        failing waits for its next try. Another replica's gauges show both waiting."""
        arrived, release = asyncio.Event(), asyncio.Event()

        async def hanging(_request: web.Request) -> web.Response:
            arrived.set()
            await release.wait()
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/page", hanging)
        async with TestServer(app, host="127.0.0.1") as server:
            url = str(server.make_url("/page"))
            (rules_dir / "shop.yml").write_text(RULES.format(pager_url=url, backup_url=backup.url))
            clock, metrics = FakeClock(), Metrics()
            hung, watching = await replica(clock), await replica(clock, metrics)
            await _failing_for_now(pool, clock, alert("CheckoutErrorSpike"))
            clock.advance(timedelta(seconds=30))
            await store_alerts(pool, clock, alert(cluster="eu-1"))
            stuck = asyncio.create_task(hung.run_once())
            await asyncio.wait_for(arrived.wait(), 10)
            clock.advance(timedelta(seconds=45))
            await _lease_renewed(pool, clock)  # the hung replica still renews its lease
            await watching.run_once()
            release.set()
            await stuck

        def gauge(name: str) -> float | None:
            return metrics.registry.get_sample_value(f"stormwatch_{name}")

        assert gauge("signals_waiting") == 1
        assert gauge("oldest_unprocessed_signal_age_seconds") == 75
        assert gauge("oldest_unsent_page_age_seconds") == 45


async def _lease_renewed(pool: asyncpg.Pool, clock: FakeClock) -> None:
    """Wait (bounded) until the page's lease runs past the clock's time: renewed by the
    heartbeat of the replica sending it."""
    for _ in range(200):
        if await pool.fetchval(
            "SELECT bool_and(lease_until > $1) FROM outbox WHERE state = 'pending'", clock.now()
        ):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the hung replica's lease was not renewed within 10 s")


async def _failing_for_now(pool: asyncpg.Pool, clock: FakeClock, *alerts: dict[str, Any]) -> None:
    """Store alerts as the engine leaves those whose rule group failed: queued for a later try."""
    signals = to_signals(parse_payload(json.dumps(payload(*alerts)).encode()), clock.now())
    async with pool.acquire() as connection:
        _, stored = await inbox.insert_signals(connection, signals, queue=False)
        later = clock.now() + timedelta(minutes=5)
        retries = [inbox.Retry(s.id, 4, frozenset({"checkout-errors"}), later) for s in stored]
        await inbox.mark_processed(connection, {}, [], retries)


class TestConditionRemovedWhileDown:
    async def test_an_engine_started_on_edited_rules_releases_what_a_condition_held(
        self, pool: asyncpg.Pool, replica: Replica, rules_dir: Path, pager: PageReceiver
    ) -> None:
        shop_rules = rules_dir / "shop.yml"
        plain = shop_rules.read_text()
        reopen = "    reopen_within: 10m\n"
        shop_rules.write_text(
            plain.replace(POOL_NAME, LAG_TOO).replace(
                reopen,
                reopen + "    all_of:\n"
                "      - ['alertname=\"PgBouncerPoolSaturated\"']\n"
                "      - ['alertname=\"ReplicationLagHigh\"']\n",
            )
        )
        clock = FakeClock()
        before = await replica(clock)
        await store_alerts(pool, clock, alert(cluster="eu-1"))
        await before.run_once()
        assert await pool.fetchval("SELECT count(*) FROM conditions") == 1

        shop_rules.write_text(plain)  # edited while no engine ran
        after = await replica(clock)
        await after.run_once()
        await after.run_once()
        assert [p["incident"]["title"] for p in pager.delivered("triggered")] == [
            "Connection pool exhausted on eu-1"
        ]
        assert await pool.fetchval("SELECT count(*) FROM conditions") == 0
