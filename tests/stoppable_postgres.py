"""A PostgreSQL server of a test's own that it can stop and start again, as an operator (or a
failover) does: ``pg_ctl stop -m fast`` ends every session with a FATAL and closes it, and
the server comes back on the same socket."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pgserver
from pgserver import _commands


class StoppablePostgres:
    """pgserver's PostgreSQL in ``home``, stopped and started with its own ``pg_ctl``."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._server: Any = None

    async def start_fresh(self, database: str) -> str:
        """Start the server, create ``database`` and return its URL."""
        self._server = await asyncio.to_thread(pgserver.get_server, self._home, cleanup_mode="stop")
        base: str = self._server.get_uri()
        connection = await asyncpg.connect(base)
        try:
            await connection.execute(f'CREATE DATABASE "{database}"')
        finally:
            await connection.close()
        return base.replace("/postgres?", f"/{database}?", 1)

    async def stop(self) -> None:
        """Stop the server (fast shutdown), waiting until it is down."""
        await asyncio.to_thread(self._pg_ctl, "-m", "fast", "stop")

    async def start(self) -> None:
        """Start it again on the same socket, waiting until it accepts connections."""
        info = self._server.get_postmaster_info()
        log = str(self._home / "log")
        await asyncio.to_thread(
            self._pg_ctl, "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", log, "start"
        )

    def cleanup(self) -> None:
        """Stop the server for good (it may be stopped already; pgserver itself only knows the
        first server process, not one started again)."""
        if self._server is None:
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("-m", "fast", "stop")
        self._server.cleanup()

    def _pg_ctl(self, *args: str) -> None:
        _commands.pg_ctl(["-w", *args], pgdata=self._home, user=self._server.system_user)
