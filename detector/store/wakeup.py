"""Wake listeners as soon as any replica commits, through PostgreSQL LISTEN/NOTIFY: the engine
on intake, the status page on public changes.

Listeners poll anyway (the engine every ``ENGINE_INTERVAL``, the status page on its refresh
tick), so a lost listener connection only costs latency: it is dropped without waiting on it, a
new one is opened after ``RETRY_SECONDS``, and the listener is woken once it listens again, for
the notifications sent while nobody listened. A notification sent inside a transaction is
delivered at its commit, and not at all on rollback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from detector.store.connection import UNAVAILABLE, Connection

log = structlog.get_logger(__name__)
INTAKE_CHANNEL = "stormwatch_intake"
STATUSPAGE_CHANNEL = "stormwatch_statuspage"
RETRY_SECONDS = 1.0
CONNECT_TIMEOUT_S = 10.0
_LOST: tuple[type[Exception], ...] = (*UNAVAILABLE, TimeoutError)


async def wake_on_intake(url: str, heard: Callable[[str], None]) -> None:
    """Call ``heard`` with the payload of every intake notification (the new record's alert
    names, ``intake_log.names_payload``; empty when unknown) (runs until cancelled)."""
    await _hear(url, INTAKE_CHANNEL, heard)


async def wake_on(url: str, channel: str, wake: Callable[[], None]) -> None:
    """Call ``wake`` on every notification on ``channel`` (runs until cancelled), and once on
    listening again after a lost connection."""
    await _hear(url, channel, lambda _payload: wake())


async def _hear(url: str, channel: str, heard: Callable[[str], None]) -> None:
    """Call ``heard`` with every notification's payload on ``channel``, and with an empty one
    on listening again after a lost connection."""
    missed = False
    while True:
        try:
            connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
        except _LOST as err:
            log.warning("engine.wakeup_unavailable", error=type(err).__name__, channel=channel)
            missed = True
            await asyncio.sleep(RETRY_SECONDS)
            continue
        try:
            await _listen(connection, channel, heard, missed)
        except _LOST as err:
            log.warning("engine.wakeup_lost", error=type(err).__name__, channel=channel)
        finally:
            connection.terminate()  # gone or going: closing politely could wait on it
        missed = True
        await asyncio.sleep(RETRY_SECONDS)


async def notify(connection: Connection, channel: str) -> None:
    """Tell every listener on ``channel`` (at commit, when inside a transaction)."""
    await connection.execute("SELECT pg_notify($1, '')", channel)


async def _listen(
    connection: asyncpg.Connection, channel: str, heard: Callable[[str], None], missed: bool
) -> None:
    """Until the connection is lost; ``missed``: wake at once for what was committed while
    nobody listened."""
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    await connection.add_listener(channel, lambda _c, _pid, _ch, payload: heard(payload))
    if missed:
        heard("")
    await lost.wait()
    log.warning("engine.wakeup_lost", channel=channel)
