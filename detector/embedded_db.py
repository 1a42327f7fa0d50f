"""An embedded PostgreSQL (the ``pgserver`` package) for running with no database configured.

Data lives under ``DATA_DIR/pgdata`` and survives restarts; the server stops with the service.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_TUNING = {
    # New WAL segments are sized, not zero-filled. Filling 16 MB whenever a segment is created
    # stalled every commit queued behind it, about once a second under a burst of webhooks.
    "wal_init_zero": "off",
}


class EmbeddedPostgres:
    """Start and stop the embedded server; ``url`` is valid between the two."""

    def __init__(self, data_dir: Path) -> None:
        self._pgdata = data_dir.resolve() / "pgdata"
        self._server: Any = None

    async def start(self) -> str:
        """Start (or attach to) the server and return an asyncpg-usable URL."""
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR as root
            warnings.simplefilter("ignore")
            import pgserver  # noqa: PLC0415 - only the embedded mode needs it

        logging.getLogger("pgserver").setLevel(logging.WARNING)
        self._pgdata.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(
            pgserver.get_server,  # type: ignore[attr-defined] # untyped re-export
            self._pgdata,
            cleanup_mode="stop",
        )
        url = str(self._server.get_uri())
        await _tune(url)
        log.info("database.embedded_started", data_dir=str(self._pgdata))
        return url

    async def stop(self) -> None:
        """Stop the server (data stays on disk)."""
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
            log.info("database.embedded_stopped")


async def _tune(url: str) -> None:
    """Apply the server settings this workload wants (kept in postgresql.auto.conf), and wait
    until the server runs with them, so connections opened next get them too."""
    connection = await asyncpg.connect(url)
    try:
        stale = await _stale(connection)
        if not stale:
            return
        for name, value in stale:
            # ALTER SYSTEM takes no parameters; names and values are the constants above.
            await connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await connection.execute("SELECT pg_reload_conf()")
        for _ in range(500):  # the reload is asynchronous; it takes milliseconds
            if not await _stale(connection):
                return
            await asyncio.sleep(0.01)
        log.warning("database.embedded_settings_not_applied", settings=dict(stale))
    finally:
        await connection.close()


async def _stale(connection: asyncpg.Connection) -> list[tuple[str, str]]:
    return [
        (name, value)
        for name, value in _TUNING.items()
        if await connection.fetchval("SELECT current_setting($1)", name) != value
    ]
