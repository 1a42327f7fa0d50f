"""Wake the engine as soon as any replica commits intake, through PostgreSQL LISTEN/NOTIFY.

The engine polls every ``ENGINE_INTERVAL`` anyway, so a lost listener connection only costs
latency; it is re-established after a pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)
INTAKE_CHANNEL = "stormwatch_intake"
RETRY_SECONDS = 5.0


async def wake_on_intake(url: str, wake: Callable[[], None]) -> None:
    """Call ``wake`` on every intake notification (runs until cancelled)."""
    while True:
        try:
            connection = await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError, TimeoutError) as err:
            log.warning("engine.wakeup_unavailable", error=type(err).__name__)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        try:
            await _listen(connection, wake)
        finally:
            await connection.close(timeout=2)
        await asyncio.sleep(RETRY_SECONDS)


async def _listen(connection: asyncpg.Connection, wake: Callable[[], None]) -> None:
    """Until the connection is lost."""
    lost = asyncio.Event()
    await connection.add_listener(INTAKE_CHANNEL, lambda *_: wake())
    connection.add_termination_listener(lambda _: lost.set())
    await lost.wait()
    log.warning("engine.wakeup_lost")
