"""Borrowing a pooled connection for one piece of work, so that giving it back cannot undo it.

asyncpg resets a connection when it goes back to the pool (one more round trip) and raises if
that fails, after the work in the block has committed. Work that claims rows (timers, outbox
messages) would then lose the claim it just made: the caller never sees the rows, and they wait
for their lease to run out. Here a failed return is logged and the connection dropped, and a
connection whose statement failed under it is dropped before the pool can reset and reuse it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from detector.store.connection import (
    CONNECTION_LOST,
    UNAVAILABLE,
    Connection,
    Pool,
    StatementError,
)

log = structlog.get_logger(__name__)
RELEASE_WITHIN_S = 5.0
"""How long giving a connection back may take (its reset): a connection to a database that
stopped answering is dropped after this, rather than after the statement timeout."""
_RELEASE_ERRORS: tuple[type[Exception], ...] = (*UNAVAILABLE, TimeoutError)
_GONE_CLASSES = ("08", "57")  # connection exception; operator intervention (a shutdown)


def connection_failed(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached or went away (lost connection,
    a server shutting down or starting, a statement timed out), rather than that it refused a
    statement: the work may succeed as it is once the database is back."""
    if isinstance(error, (*CONNECTION_LOST, TimeoutError)):
        return True
    return isinstance(error, StatementError) and str(error.sqlstate).startswith(_GONE_CLASSES)


@asynccontextmanager
async def pooled(pool: Pool) -> AsyncIterator[Connection]:
    """A connection for the block; its return to the pool never raises.

    A block that fails because the connection failed under it (``connection_failed``) has
    the connection terminated first: its protocol state is unknown, and a reset on it could
    wait for an answer that never comes.
    """
    connection = await pool.acquire()
    try:
        yield connection
    except BaseException as err:
        if connection_failed(err):
            connection.terminate()
        raise
    finally:
        try:
            await pool.release(connection, timeout=RELEASE_WITHIN_S)
        except _RELEASE_ERRORS as err:
            log.warning("database.release_failed", error=type(err).__name__)
