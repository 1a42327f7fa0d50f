"""The service's database: the configured PostgreSQL or an embedded one, migrated, as a pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from detector.service.settings import Settings
from detector.store import migrate as migrations
from detector.store.connection import init_connection
from detector.store.embedded import EmbeddedPostgres


@asynccontextmanager
async def database_server(settings: Settings) -> AsyncIterator[str]:
    """The configured PostgreSQL's URL, or an embedded server's, stopped when the block ends."""
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    url = await embedded.start()
    try:
        yield url
    finally:
        await embedded.stop()


def named(url: str, process: str) -> str:
    """``url`` with PostgreSQL's ``application_name`` set to ``process``, unless the URL names
    one already or is empty (the ``PG*`` environment's defaults, ``PGAPPNAME`` among them):
    ``pg_stat_activity`` and the server's logs then tell each connection's process apart (a web
    replica's, an engine's) from each other and from other clients."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not url or any(key == "application_name" for key, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, ("application_name", process)])))


STATEMENT_TIMEOUT_S = 60.0


@asynccontextmanager
async def connection_pool(url: str, size: int) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on a migrated database.

    Statements on the pool give up after ``STATEMENT_TIMEOUT_S``, so a connection to a
    database that stopped answering (a partition) is dropped instead of holding its task for
    good; migrations run on a connection of their own, without that limit.
    """
    migrating = await asyncpg.connect(url)
    try:
        await migrations.migrate(migrating)
    finally:
        await migrating.close()
    pool = await asyncpg.create_pool(
        url,
        min_size=2,
        max_size=size,
        init=init_connection,
        command_timeout=STATEMENT_TIMEOUT_S,
    )
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A migrated connection pool, on the configured PostgreSQL or an embedded one."""
    async with (
        database_server(settings) as url,
        connection_pool(url, settings.db_pool_size) as pool,
    ):
        yield pool
