"""An embedded PostgreSQL (the ``pgserver`` package) for running with no database configured.

Data lives under ``DATA_DIR/pgdata`` and survives restarts; the server stops with the service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
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
        await asyncio.to_thread(_forget_dead_handles, self._pgdata)
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


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop the pids of processes that are gone from pgserver's list of handles.

    pgserver stops the server when its last handle (a pid in ``.handle_pids.json``) lets go; a
    service killed without cleaning up (SIGKILL, OOM) leaves its pid there for good, and the
    server would never be stopped again. Done under pgserver's own lock.
    """
    import fasteners  # noqa: PLC0415 - pgserver's dependency, only the embedded mode needs it
    from pgserver.postgres_server import PostgresServer  # noqa: PLC0415

    handles = pgdata / ".handle_pids.json"
    with fasteners.InterProcessLock(PostgresServer.lock_path):
        if not handles.exists():
            return
        pids = json.loads(handles.read_text())
        alive = [pid for pid in pids if _running(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))
            log.warning("database.embedded_stale_handles", dropped=len(pids) - len(alive))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


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
