"""People with contact methods paged through the real outbox, for engine tests: the shop's rules
(``tests.conftest.RULES``) plus people, the routes with a channel per contact method, and
pages queued to a person's method as an escalation step would queue them."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from detector.domain.model import PageOrder
from detector.engine.bundling import Bundling
from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer
from detector.ruleset.channel_specs import Target
from detector.ruleset.live import Routes
from detector.ruleset.loader import load_ruleset
from detector.ruleset.oncall_specs import PersonSpec
from detector.service.metrics import Metrics
from detector.store import incidents, outbox
from detector.web.ack_links import LinkBuilder
from responders.channels.protocol import Channel
from responders.messages import PageEvent
from tests.conftest import alert, store_alerts
from tests.fakes import FakeClock

LINK_KEY = b"people-link-key"


def person(person_id: str, *methods: Target) -> PersonSpec:
    return PersonSpec(
        id=person_id, name=person_id.title(), time_zone="Europe/Berlin", contact_methods=methods
    )


def routes_with(
    rules_dir: Path, people: Sequence[PersonSpec], channels: Mapping[str, Channel]
) -> Routes:
    """The shop's rules with ``people``, delivering through ``channels`` only (by outbox key)."""
    rules = replace(load_ruleset(rules_dir), people={p.id: p for p in people})
    return Routes(rules, dict(channels))


def links(clock: FakeClock) -> LinkBuilder:
    return LinkBuilder("https://stormwatch.example", LINK_KEY, timedelta(hours=12), clock)


def engine_for(
    pool: asyncpg.Pool,
    routes: Routes,
    clock: FakeClock,
    metrics: Metrics,
    bundling: Bundling | None = None,
) -> Engine:
    deliverer = Deliverer(links(clock), random.Random(7), bundling or Bundling())
    return Engine(pool, lambda: routes, deliverer, clock, metrics)


async def open_incidents(
    pool: asyncpg.Pool, engine: Engine, clock: FakeClock, clusters: Sequence[str]
) -> list[int]:
    """Open one pool-exhausted incident per cluster; their ids, in the clusters' order."""
    await store_alerts(pool, clock, *(alert(cluster=cluster) for cluster in clusters))
    await engine.run_once()
    rows = await pool.fetch(
        "SELECT id, group_labels->>'cluster' AS cluster FROM incidents"
        " WHERE group_labels->>'cluster' = ANY($1::text[])",
        list(clusters),
    )
    by_cluster = {row["cluster"]: row["id"] for row in rows}
    return [by_cluster[cluster] for cluster in clusters]


async def page_person(
    pool: asyncpg.Pool, incident_ids: Sequence[int], key: str, now: datetime
) -> None:
    """Queue a triggered page of each incident to the contact method ``key``, due ``now``."""
    async with pool.acquire() as connection, connection.transaction():
        for incident_id in incident_ids:
            incident = await incidents.lock_incident(connection, incident_id)
            assert incident is not None
            order = PageOrder(key, PageEvent.TRIGGERED, 0)
            await outbox.add_pages(connection, incident, incident_id, [order], now)


async def page_timeline(
    pool: asyncpg.Pool, incident_id: int
) -> list[tuple[str, dict[str, object]]]:
    """The incident's page entries to people (kind and detail without retry times), in order."""
    rows = await pool.fetch(
        "SELECT kind, detail FROM timeline WHERE incident_id = $1 AND kind LIKE 'page.%'"
        " AND (detail ? 'person' OR detail->>'channel' LIKE 'person:%') ORDER BY id",
        incident_id,
    )
    return [
        (row["kind"], {key: value for key, value in row["detail"].items() if key != "retry_at"})
        for row in rows
    ]
