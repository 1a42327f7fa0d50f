"""The connection every store function takes: its type (and its pool's, and the database's
error), the codecs each pooled connection gets, the readiness probe, and reading how many rows a
statement touched."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import orjson

Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)
Pool: TypeAlias = asyncpg.Pool
"""The pool callers outside the store hold, to hand connections from it to store functions."""
StatementError = asyncpg.PostgresError
"""What the database raises when it refuses a statement (its ``sqlstate`` says why)."""
CONNECTION_LOST: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)
"""What a statement raises when its connection failed or closed under it.

``InternalClientError`` belongs here: a server that shuts down sends each idle session its
``FATAL`` before closing it, and a statement sent in the moment between the two (the close is
read on a later turn of the event loop, later still through a proxy) finds asyncpg's protocol
waiting for a reply that never comes ("cannot switch to state 11; another operation (2) is in
progress"). It derives from neither of asyncpg's other error classes."""
UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)
"""What a statement raises when the database refuses it or cannot be reached (a connection that
dropped or closed under it); catch these where the caller can wait for the next try."""


async def init_connection(connection: asyncpg.Connection) -> None:
    """Decode json and jsonb as Python objects on every pooled connection."""
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=dict).decode()  # Mapping views become objects


def rows_affected(status: str) -> int:
    """How many rows a statement touched, from its status (``UPDATE 3``, ``INSERT 0 3``)."""
    return int(status.rsplit(" ", 1)[-1])


async def ping(pool: asyncpg.Pool) -> None:
    """One round trip to the database (raises what the connection raises)."""
    await pool.fetchval("SELECT 1")
