"""Shared fixtures: one real PostgreSQL (pgserver) per test session, a fresh database per test,
a page receiver on 127.0.0.1, and the full service app driven by a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pgserver
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from detector.engine.cycle import CycleReport, Engine
from detector.engine.delivery import Deliverer
from detector.engine.signals import SignalProcessor
from detector.intake.alertmanager import parse_payload, to_signals
from detector.ruleset.live import LiveRules
from detector.service.app import build_channels, channel_registry, create_app
from detector.service.clock import Clock
from detector.service.metrics import Metrics
from detector.service.settings import Settings
from detector.store import migrate as migrations
from detector.store import signals as inbox
from detector.store.connection import init_connection
from detector.web.ack_links import LinkBuilder
from detector.web.context import SERVICES, Services
from tests.fakes import T0, FakeClock, PageReceiver

RULES = """
components:
  - name: checkout
    display_name: Checkout
channels:
  - name: pager
    type: webhook
    url: {pager_url}
    retry: {{max_attempts: 3, initial_delay: 10s, max_delay: 1m}}
  - name: backup
    type: webhook
    url: {backup_url}
escalation_policies:
  - name: oncall
    steps:
      - notify: [pager]
        escalate_after: 5m
      - notify: [backup]
rules:
  - name: pool-exhausted
    match: ['alertname="PgBouncerPoolSaturated"']
    group_by: [cluster]
    severity: critical
    title: "Connection pool exhausted on {{{{ labels.cluster }}}}"
    summary: "{{{{ annotations.summary }}}}"
    component: checkout
    escalation_policy: oncall
    reopen_within: 10m
  - name: checkout-errors
    match: ['alertname="CheckoutErrorSpike"']
    severity: major
    title: Checkout errors
    component: checkout
    escalation_policy: oncall
    auto_resolve: false
    resolve_after: 15m
"""


# Tests log through structlog's defaults, but with plain tracebacks: the default renders every
# frame's locals with rich, which takes seconds per error on the event loop under test.
structlog.configure(
    processors=[
        *structlog.get_config()["processors"][:-1],
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
async def database_url(pg_server: Any) -> str:
    base: str = pg_server.get_uri()
    name = f"t_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(base)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return base.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10, init=init_connection)
    async with pool.acquire() as connection:
        await migrations.migrate(connection)
    yield pool
    await pool.close()


@pytest.fixture
async def pager() -> AsyncIterator[PageReceiver]:
    receiver = await PageReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def backup() -> AsyncIterator[PageReceiver]:
    receiver = await PageReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "shop.yml").write_text(RULES.format(pager_url=pager.url, backup_url=backup.url))
    return directory


def alert(
    name: str = "PgBouncerPoolSaturated",
    status: str = "firing",
    starts_at: datetime = T0,
    ends_at: datetime | None = None,
    fingerprint: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager puts it in a webhook."""
    all_labels = {"alertname": name, **labels}
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{name} on {labels.get('cluster', '?')}"},
        "startsAt": starts_at.isoformat(),
        "endsAt": (ends_at or datetime(1, 1, 1, tzinfo=T0.tzinfo)).isoformat(),
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": fingerprint
        or uuid.uuid5(uuid.NAMESPACE_OID, json.dumps(all_labels, sort_keys=True)).hex[:16],
    }


def payload(*alerts: dict[str, Any], receiver: str = "stormwatch") -> dict[str, Any]:
    """A version 4 webhook body around ``alerts``."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupKey": '{}:{alertname="X"}',
        "truncatedAlerts": 0,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


async def store_alerts(pool: asyncpg.Pool, clock: FakeClock, *alerts: dict[str, Any]) -> None:
    """Commit ``alerts`` as intake would, for tests that run an engine without the service."""
    signals = to_signals(parse_payload(json.dumps(payload(*alerts)).encode()), clock.now())
    async with pool.acquire() as connection:
        await inbox.insert_signals(connection, signals)


@dataclass
class Shop:
    """The running service under test: HTTP client, services, clock and page receivers; its
    cycles run the service's engine unless ``engine`` is another (see ``with_signal_stage``)."""

    client: TestClient
    services: Services
    clock: FakeClock
    pager: PageReceiver
    backup: PageReceiver
    engine: Engine | None = None

    async def post_alerts(
        self, *alerts: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        return await self.client.post(
            "/api/v1/alertmanager", json=payload(*alerts), headers=headers or {}
        )

    async def cycle(self) -> CycleReport:
        """One engine cycle at the fake clock's time."""
        return await (self.engine or self.services.engine).run_once()

    async def advance(self, delta: timedelta) -> CycleReport:
        self.clock.advance(delta)
        return await self.cycle()

    async def incident(self, incident_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/incidents/{incident_id}")
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    async def incidents(self, state: str = "all") -> list[dict[str, Any]]:
        response = await self.client.get(f"/api/v1/incidents?state={state}&limit=1000")
        assert response.status == 200, await response.text()
        return (await response.json())["incidents"]  # type: ignore[no-any-return]


def engine_on(
    pool: Any,
    rules_dir: Path,
    session: aiohttp.ClientSession,
    clock: Clock,
    metrics: Metrics | None = None,
    **options: Any,
) -> Engine:
    """An engine replica on ``pool`` and the rules in ``rules_dir``, sending through their real
    channels over ``session``; ``options`` as ``Engine`` takes them."""
    registry = channel_registry(session)
    rules = LiveRules(rules_dir, lambda r: build_channels(r, registry), clock.now)
    links = LinkBuilder("https://sw.example", b"k", timedelta(hours=1), clock)
    deliverer = Deliverer(links, random.Random(7))
    return Engine(pool, lambda: rules.routes, deliverer, clock, metrics or Metrics(), **options)


@contextlib.asynccontextmanager
async def running_engine(
    pool: asyncpg.Pool, rules_dir: Path, clock: Clock, **options: Any
) -> AsyncIterator[Engine]:
    """A real engine (``options`` as ``Engine`` takes them) with the rules' real channels,
    running until the block ends."""
    async with aiohttp.ClientSession() as session:
        engine = engine_on(pool, rules_dir, session, clock, **options)
        running = asyncio.create_task(engine.run())
        try:
            yield engine
        finally:
            engine.stop()
            await running


@dataclass(frozen=True)
class Passed:
    """A probe's report: never busy, so it changes nothing about when lanes run."""

    busy: bool = False

    def record(self, metrics: Metrics) -> None:
        """Nothing to count."""


def with_signal_stage(shop: Shop, process_signals: SignalProcessor) -> Shop:
    """The shop cycling another engine replica, whose signal stage is ``process_signals``: same
    database, rules, clock and metrics, and it hears of rules reloads as the service's own."""
    services, settings = shop.services, shop.services.settings
    links = LinkBuilder(
        settings.base_url, services.signing_key, settings.ack_link_ttl, services.clock
    )
    engine = Engine(
        services.pool,
        lambda: services.rules.routes,
        Deliverer(links, random.Random(7)),
        services.clock,
        services.metrics,
        settings.engine_interval,
        retention=settings.retention,
        batch_window=settings.engine_batch_window,
        process_signals=process_signals,
        related_window=settings.related_window,
    )
    services.reloader.on_swap(engine.rules_changed)
    return replace(shop, engine=engine)


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[dict[str, Any]]:
    """The fields of each ``name`` event in ``structlog.testing.capture_logs`` output (without
    its level and exception flag)."""
    noise = {"event", "log_level", "exc_info"}
    return [
        {key: value for key, value in entry.items() if key not in noise}
        for entry in logs
        if entry["event"] == name
    ]


POOL_NAME = 'alertname="PgBouncerPoolSaturated"'
LAG_TOO = 'alertname=~"PgBouncerPoolSaturated|ReplicationLagHigh"'
"""The pool rule's matcher in RULES, and the same widened to ReplicationLagHigh."""


async def reload_edited(shop: Shop, rules_dir: Path, old: str, new: str) -> None:
    """Reload the shop's rules with ``old`` (which must be in them) replaced by ``new``."""
    text = RULES.format(pager_url=shop.pager.url, backup_url=shop.backup.url)
    assert old in text
    (rules_dir / "shop.yml").write_text(text.replace(old, new))
    assert (await shop.client.post("/api/v1/rules/reload")).status == 200


def settings_for(database_url: str, rules_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "rules_dir": rules_dir,
        "public_url": "https://stormwatch.example",
        "signing_key": "test-signing-key",
        "run_engine": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def shop(
    database_url: str,
    rules_dir: Path,
    pager: PageReceiver,
    backup: PageReceiver,
    settings_overrides: dict[str, Any],
) -> AsyncIterator[Shop]:
    clock = FakeClock()
    app = create_app(settings_for(database_url, rules_dir, **settings_overrides), clock=clock)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Shop(client, app[SERVICES], clock, pager, backup)
    finally:
        await client.close()
