"""An embedded PostgreSQL (the ``pgserver`` package) for running with no database configured.

Data lives under ``DATA_DIR/pgdata`` and survives restarts; the server stops with the service.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


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
        log.info("database.embedded_started", data_dir=str(self._pgdata))
        return str(self._server.get_uri())

    async def stop(self) -> None:
        """Stop the server (data stays on disk)."""
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
            log.info("database.embedded_stopped")
