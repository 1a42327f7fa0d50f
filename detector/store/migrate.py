"""Plain-SQL migrations, applied in file-name order and recorded, under an advisory lock so
replicas starting together apply each one once."""

from __future__ import annotations

from importlib import resources

import structlog

from detector.store import locks
from detector.store.connection import Connection

log = structlog.get_logger(__name__)


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) pairs shipped in ``detector/store/migrations``, in order."""
    folder = resources.files("detector.store") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return [(name.removesuffix(".sql"), sql) for name, sql in files]


async def migrate(connection: Connection) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[str] = []
    async with connection.transaction():
        await locks.hold(connection, locks.AdvisoryLock.MIGRATIONS)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM schema_migrations")
        }
        for version, sql in migration_files():
            if version in done:
                continue
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
            log.info("migration.applied", version=version)
    return applied_now
