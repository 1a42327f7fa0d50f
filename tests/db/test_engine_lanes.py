"""A running engine's lanes: a page receiver that does not answer holds up neither the next
incident nor its page, and a page is sent as soon as the detecting stages queue it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer
from detector.ruleset.live import LiveRules
from detector.service.app import build_channels, channel_registry
from detector.service.clock import SystemClock
from detector.service.metrics import Metrics
from detector.web.ack_links import LinkBuilder
from tests.conftest import alert, store_alerts
from tests.fakes import PageReceiver

HELD = "held"
"""The cluster whose page the receiver holds unanswered."""
BOUND_S = 3.0
"""Well inside the channel's 10 s send timeout, which a blocked engine would have waited out."""


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
        async with aiohttp.ClientSession() as session:
            registry = channel_registry(session)
            live = LiveRules(rules_dir, lambda r: build_channels(r, registry), clock.now)
            links = LinkBuilder("https://sw.example", b"k", timedelta(hours=1), clock)
            engine = Engine(
                pool, lambda: live.routes, Deliverer(links, random.Random(7)), clock, Metrics()
            )
            running = asyncio.create_task(engine.run())
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
                engine.stop()
                await running

        assert opened == 1
        assert [body["incident"]["group"]["cluster"] for body in pager.requests] == [HELD, "c2"]
        delivered = await pool.fetchval("SELECT count(*) FROM outbox WHERE state = 'delivered'")
        assert delivered == 2, "the held page was recorded once it was answered"
