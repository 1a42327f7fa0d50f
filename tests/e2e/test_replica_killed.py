"""A replica killed while it sends pages: another replica finishes the work within seconds, and
sends again only what the dead one had in flight (docs/operations.md, *Delivery after a
crash*).

The dead replica is a real ``stormwatch serve`` process (engine in the same process), killed
with SIGKILL while one receiver holds its page and the other pages have been answered; the
survivor is an engine on its own pool, started after the kill.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from detector.engine.leases import TERM
from detector.service.clock import SystemClock
from detector.store.connection import init_connection
from tests.conftest import RULES, alert, engine_on, store_alerts
from tests.e2e.test_serve_process import Service
from tests.fakes import PageReceiver

pytestmark = pytest.mark.e2e
PAGES = 20
WINDOW_S = TERM.total_seconds() + 5
"""A page the dead replica had in flight is sent again within this of the kill: its lease's
term, plus the survivor's cycle and send."""


@pytest.fixture
async def held_pager() -> AsyncIterator[PageReceiver]:
    """Answers every page at once but the one for cluster ``held``, which waits."""
    receiver = await PageReceiver(
        hold=lambda body: body["incident"]["group"] == {"cluster": "held"}
    ).start()
    yield receiver
    receiver.let_go()
    await receiver.stop()


class TestReplicaKilledMidBatch:
    async def test_pages_it_sent_are_not_sent_again_and_the_rest_follow_within_seconds(
        self,
        tmp_path: Path,
        database_url: str,
        pool: asyncpg.Pool,
        held_pager: PageReceiver,
        backup: PageReceiver,
    ) -> None:
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "shop.yml").write_text(
            RULES.format(pager_url=held_pager.url, backup_url=backup.url)
        )
        env = {"STORMWATCH_DATABASE_URL": database_url, "STORMWATCH_ENGINE_PROCESS": "false"}
        doomed = await asyncio.to_thread(
            Service, tmp_path / "data", tmp_path / "doomed.log", rules, env
        )
        try:
            clusters = [f"c{n}" for n in range(PAGES - 1)] + ["held"]
            await store_alerts(pool, SystemClock(), *(alert(cluster=c) for c in clusters))
            await held_pager.wait_for(PAGES, timeout=30)
            await asyncio.wait_for(held_pager.holding.wait(), 10)
            await asyncio.sleep(0.5)  # the answered sends' outcomes have been recorded by now
        finally:
            doomed.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(doomed.process.wait)
        killed = time.monotonic()
        held_pager.let_go()

        async with (
            aiohttp.ClientSession() as session,
            asyncpg.create_pool(
                database_url, min_size=1, max_size=4, init=init_connection
            ) as own_pool,
        ):
            engine = engine_on(own_pool, rules, session, SystemClock())
            running = asyncio.create_task(engine.run())
            try:
                delivered = await _all_delivered(pool, WINDOW_S + 5)
            finally:
                engine.stop()
                await running

        keys = [headers["Idempotency-Key"] for headers in held_pager.headers]
        again = [key for key, sends in Counter(keys).items() if sends > 1]
        held_key = _key_of(held_pager, "held")
        assert again in ([], [held_key]), "only the page in flight at the kill is sent again"
        resent = [t for t, k in zip(held_pager.times, keys, strict=True) if k == held_key][1:]
        assert all(t - killed < WINDOW_S for t in resent)
        assert delivered - killed < WINDOW_S, "every page recorded delivered within the window"


def _key_of(receiver: PageReceiver, cluster: str) -> str:
    [key] = {
        headers["Idempotency-Key"]
        for body, headers in zip(receiver.requests, receiver.headers, strict=True)
        if body["incident"]["group"] == {"cluster": cluster}
    }
    return key


async def _all_delivered(pool: asyncpg.Pool, timeout: float) -> float:
    """When every page was recorded delivered (monotonic), polling the outbox (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = await pool.fetchval("SELECT count(*) FROM outbox WHERE state <> 'delivered'")
        if pending == 0:
            return time.monotonic()
        await asyncio.sleep(0.1)
    pytest.fail(f"pages still not recorded delivered {timeout:.0f} s after the kill")
