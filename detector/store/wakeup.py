"""Wake listeners as soon as any replica commits, through PostgreSQL LISTEN/NOTIFY: the engine
on intake, the status page on public changes.

Listeners poll anyway (the engine every ``ENGINE_INTERVAL``, the status page on its refresh
tick), so a lost listener connection only costs latency; it is re-established after a pause.
A notification sent inside a transaction is delivered at its commit, and not at all on rollback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from detector.store.connection import Connection

log = structlog.get_logger(__name__)
INTAKE_CHANNEL = "stormwatch_intake"
STATUSPAGE_CHANNEL = "stormwatch_statuspage"
RETRY_SECONDS = 5.0


async def wake_on_intake(url: str, wake: Callable[[], None]) -> None:
    """Call ``wake`` on every intake notification (runs until cancelled)."""
    await wake_on(url, INTAKE_CHANNEL, wake)


async def wake_on(url: str, channel: str, wake: Callable[[], None]) -> None:
    """Call ``wake`` on every notification on ``channel`` (runs until cancelled)."""
    while True:
        try:
            connection = await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError, TimeoutError) as err:
            log.warning("engine.wakeup_unavailable", error=type(err).__name__, channel=channel)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        try:
            await _listen(connection, channel, wake)
        finally:
            await connection.close(timeout=2)
        await asyncio.sleep(RETRY_SECONDS)


async def notify(connection: Connection, channel: str) -> None:
    """Tell every listener on ``channel`` (at commit, when inside a transaction)."""
    await connection.execute("SELECT pg_notify($1, '')", channel)


async def _listen(connection: asyncpg.Connection, channel: str, wake: Callable[[], None]) -> None:
    """Until the connection is lost."""
    lost = asyncio.Event()
    await connection.add_listener(channel, lambda *_: wake())
    connection.add_termination_listener(lambda _: lost.set())
    await lost.wait()
    log.warning("engine.wakeup_lost", channel=channel)
