"""Two engines on one database mid-escalation, one of them a real ``stormwatch serve`` killed
with SIGKILL between the first page and the second step: the other pages the next step on
time, and nobody is paged twice (every idempotency key reaches its receiver once)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from detector.service.clock import SystemClock
from detector.store.connection import init_connection
from tests.conftest import RULES, alert, engine_on, store_alerts
from tests.e2e.test_serve_process import Service
from tests.fakes import PageReceiver

pytestmark = pytest.mark.e2e
INCIDENTS = 6
STEP = 10
"""Seconds from the first page to the second step: time for every first page to arrive and one
engine to be killed in between, on a loaded machine too."""
ON_TIME_S = 3.0
"""How late a step may page: the survivor's cycle interval (1 s), claim and send."""


class TestReplicaKilledMidEscalation:
    async def test_the_survivor_pages_the_next_step_on_time_and_nobody_twice(
        self,
        tmp_path: Path,
        database_url: str,
        pool: asyncpg.Pool,
        pager: PageReceiver,
        backup: PageReceiver,
    ) -> None:
        rules = tmp_path / "rules"
        rules.mkdir()
        text = RULES.format(pager_url=pager.url, backup_url=backup.url)
        (rules / "shop.yml").write_text(
            text.replace("escalate_after: 5m", f"escalate_after: {STEP}s")
        )
        env = {"STORMWATCH_DATABASE_URL": database_url, "STORMWATCH_ENGINE_PROCESS": "false"}
        doomed = await asyncio.to_thread(
            Service, tmp_path / "data", tmp_path / "doomed.log", rules, env
        )
        async with (
            aiohttp.ClientSession() as session,
            asyncpg.create_pool(
                database_url, min_size=1, max_size=4, init=init_connection
            ) as own_pool,
        ):
            survivor = engine_on(own_pool, rules, session, SystemClock())
            running = asyncio.create_task(survivor.run())
            try:
                clusters = [f"c{n}" for n in range(INCIDENTS)]
                await store_alerts(pool, SystemClock(), *(alert(cluster=c) for c in clusters))
                await pager.wait_for(INCIDENTS, timeout=30)
                doomed.process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(doomed.process.wait)
                killed = datetime.now(UTC)
                due = await pool.fetch(
                    "SELECT due_at FROM timers WHERE kind = 'escalate' AND fired_at IS NULL"
                )
                assert len(due) == INCIDENTS
                assert all(row["due_at"] > killed for row in due), "killed mid-escalation"
                await backup.wait_for(INCIDENTS, timeout=STEP + 30)
                arrived = time.time() - time.monotonic()  # monotonic → wall clock
            finally:
                survivor.stop()
                await running

        latest_due = max(row["due_at"] for row in due).timestamp()
        assert max(backup.times) + arrived - latest_due < ON_TIME_S, "the next step on time"
        assert min(backup.times) + arrived >= min(row["due_at"] for row in due).timestamp()
        keys = [h["Idempotency-Key"] for h in (*pager.headers, *backup.headers)]
        assert [key for key, sent in Counter(keys).items() if sent > 1] == []
        assert len(keys) == 2 * INCIDENTS
        assert {body["escalation_step"] for body in backup.requests} == {1}
