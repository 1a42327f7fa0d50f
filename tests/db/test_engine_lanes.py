"""A running engine's lanes: a page receiver that does not answer holds up neither the next
incident nor its page, and a page is sent as soon as the detecting stages queue it, while an
intake commit that brings nothing new runs no delivery pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from detector.engine.stage import CycleContext, Lane
from detector.service.clock import SystemClock
from tests.conftest import Passed, alert, running_engine, store_alerts
from tests.fakes import PageReceiver

HELD = "held"
"""The cluster whose page the receiver holds unanswered."""
BOUND_S = 3.0
"""Well inside the channel's 10 s send timeout, which a blocked engine would have waited out."""


class Probe:
    """A stage at the end of ``lane`` that notes each pass in a shared ``timeline`` and tells
    whoever waits for the next one."""

    def __init__(self, lane: Lane, timeline: list[str]) -> None:
        self.name = f"{lane}-probe"
        self.lane = lane
        self.timeline = timeline
        self.passed = asyncio.Event()

    async def run(self, context: CycleContext) -> Passed:
        self.timeline.append(self.lane)
        self.passed.set()
        return Passed()

    async def next_pass(self) -> None:
        self.passed.clear()
        await asyncio.wait_for(self.passed.wait(), timeout=BOUND_S)


def held(body: dict[str, Any]) -> bool:
    return bool(body["incident"]["group"].get("cluster") == HELD)


@pytest.fixture
async def pager() -> AsyncIterator[PageReceiver]:
    """The rules' pager channel (``rules_dir``), holding the ``HELD`` cluster's page."""
    receiver = await PageReceiver(hold=held).start()
    yield receiver
    receiver.let_go()
    await receiver.stop()


class TestLanes:
    async def test_an_unanswered_page_holds_up_neither_the_next_incident_nor_its_page(
        self, pool: asyncpg.Pool, rules_dir: Path, pager: PageReceiver
    ) -> None:
        clock = SystemClock()
        async with running_engine(pool, rules_dir, clock) as engine:
            try:
                await store_alerts(pool, clock, alert(cluster=HELD))
                engine.wake()
                await asyncio.wait_for(pager.holding.wait(), timeout=BOUND_S)

                await store_alerts(pool, clock, alert(cluster="c2"))
                engine.wake()
                await pager.wait_for(2, timeout=BOUND_S)
                opened = await pool.fetchval(
                    "SELECT count(*) FROM incidents WHERE group_labels->>'cluster' = 'c2'"
                )
            finally:
                pager.let_go()

        assert opened == 1
        assert [body["incident"]["group"]["cluster"] for body in pager.requests] == [HELD, "c2"]
        delivered = await pool.fetchval("SELECT count(*) FROM outbox WHERE state = 'delivered'")
        assert delivered == 2, "the held page was recorded once it was answered"

    async def test_delivery_follows_detection_that_found_work_not_every_intake_commit(
        self, pool: asyncpg.Pool, rules_dir: Path, pager: PageReceiver
    ) -> None:
        clock = SystemClock()
        timeline: list[str] = []
        detecting, delivering = Probe(Lane.DETECT, timeline), Probe(Lane.DELIVER, timeline)
        started = asyncio.gather(detecting.next_pass(), delivering.next_pass())
        async with running_engine(
            pool,
            rules_dir,
            clock,
            interval=timedelta(minutes=5),  # no lane runs on its own while the test lasts
            extra_stages=[detecting, delivering],
        ) as engine:
            await started
            idle_from = len(timeline)
            for _ in range(3):  # commits another replica's engine took first, say
                engine.signals_stored()
                await detecting.next_pass()
            idle_until = len(timeline)

            await store_alerts(pool, clock, alert(cluster="c2"))
            engine.signals_stored()
            await pager.wait_for(1, timeout=BOUND_S)

        assert timeline[idle_from:idle_until] == [Lane.DETECT] * 3, "no delivery pass"
        assert [body["incident"]["group"]["cluster"] for body in pager.requests] == ["c2"]
