"""Each journey runs once per interval at each location, however many replicas run there:
two probers of one location racing every slot on real PostgreSQL, and a third elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import yaml

from detector.probes.journey import JourneySpec
from detector.probes.prober import Prober
from detector.probes.runner import JourneyRunner
from detector.probes.timings import timed_ssl_context
from detector.service.metrics import Metrics
from detector.store import probes as store
from detector.store.connection import init_connection
from tests.fakes import FakeClock
from tests.probe_shop import JOURNEY, ProbeShop

INTERVAL = timedelta(minutes=1)


@pytest.fixture
async def probe_shop() -> AsyncIterator[ProbeShop]:
    shop = await ProbeShop().start()
    yield shop
    await shop.stop()


def prober(
    pool: asyncpg.Pool, clock: FakeClock, journey: JourneySpec, location: str, owner: str
) -> Prober:
    return Prober(
        pool,
        lambda: {journey.name: journey},
        JourneyRunner(location, timed_ssl_context()),
        clock,
        Metrics(),
        location=location,
        owner=owner,
        concurrency=4,
    )


async def test_one_run_per_interval_per_location_across_replicas(
    pool: asyncpg.Pool, database_url: str, probe_shop: ProbeShop
) -> None:
    clock = FakeClock()
    journey = JourneySpec.model_validate(yaml.safe_load(JOURNEY.format(base=probe_shop.url)))
    other_pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=4, init=init_connection
    )
    first = prober(pool, clock, journey, "eu-west", "replica-a")
    second = prober(other_pool, clock, journey, "eu-west", "replica-b")  # its own connections
    elsewhere = prober(other_pool, clock, journey, "us-east", "replica-c")
    runs: dict[str, list[str]] = {"eu-west": [], "us-east": []}
    for _ in range(6):
        clock.advance(INTERVAL)
        for _ in range(3):  # several ticks within one slot still run it once
            batches = await asyncio.gather(first.run_due(), second.run_due(), elsewhere.run_due())
            for result in (r for batch in batches for r in batch):
                runs[result.location].append(result.run_id)
    assert len(runs["eu-west"]) == 5  # the first slot only adds the row
    assert len(runs["us-east"]) == 5
    await other_pool.close()
    async with pool.acquire() as connection:
        rows = await store.latest(connection)
    assert [(row["journey"], row["location"]) for row in rows] == [
        ("checkout", "eu-west"),
        ("checkout", "us-east"),
    ]
    assert {row["claimed_by"] for row in rows} <= {"replica-a", "replica-b", "replica-c"}
    assert all(row["next_due_at"] > clock.now() for row in rows)
    assert all(row["last_success"] for row in rows)


async def test_a_disabled_journey_is_not_run(pool: asyncpg.Pool, probe_shop: ProbeShop) -> None:
    clock = FakeClock()
    data = yaml.safe_load(JOURNEY.format(base=probe_shop.url)) | {"enabled": False}
    journey = JourneySpec.model_validate(data)
    replica = prober(pool, clock, journey, "eu-west", "replica-a")
    for _ in range(3):
        clock.advance(INTERVAL)
        assert await replica.run_due() == []
    assert probe_shop.requests == []


@pytest.mark.parametrize(("concurrency", "overlap"), [(1, False), (2, True)])
async def test_runs_in_flight_are_bounded(
    pool: asyncpg.Pool, probe_shop: ProbeShop, concurrency: int, overlap: bool
) -> None:
    clock = FakeClock()
    base = yaml.safe_load(JOURNEY.format(base=probe_shop.url))
    journeys = {
        name: JourneySpec.model_validate(base | {"name": name}) for name in ("first", "second")
    }
    replica = Prober(
        pool,
        lambda: journeys,
        JourneyRunner("eu-west", timed_ssl_context()),
        clock,
        Metrics(),
        location="eu-west",
        owner="replica-a",
        concurrency=concurrency,
    )
    await replica.run_due()
    clock.advance(timedelta(hours=1))  # past both journeys' slots
    probe_shop.faults["product_delay"] = 0.3
    results = await replica.run_due()
    assert [result.success for result in results] == [True, True]
    assert probe_shop.most_browsing == (2 if overlap else 1)
