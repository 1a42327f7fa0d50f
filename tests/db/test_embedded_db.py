"""The embedded PostgreSQL the service starts when no database URL is configured."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg

from detector.store.embedded import EmbeddedPostgres


async def _setting(url: str, name: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        value: str = await connection.fetchval("SELECT current_setting($1)", name)
        return value
    finally:
        await connection.close()


async def test_new_wal_segments_are_not_zero_filled_and_the_setting_survives_restarts(
    tmp_path: Path,
) -> None:
    for _ in range(2):
        server = EmbeddedPostgres(tmp_path)
        url = await server.start()
        try:
            assert await _setting(url, "wal_init_zero") == "off"
        finally:
            await server.stop()
    assert "wal_init_zero" in (tmp_path / "pgdata" / "postgresql.auto.conf").read_text()


async def test_the_server_stops_even_after_a_killed_service_left_its_handle(
    tmp_path: Path,
) -> None:
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()  # a pid that is surely gone
    handles = tmp_path / "pgdata" / ".handle_pids.json"
    server = EmbeddedPostgres(tmp_path)
    await server.start()
    await server.stop()
    handles.write_text(json.dumps([gone.pid]))  # as a SIGKILLed service leaves it

    server = EmbeddedPostgres(tmp_path)
    await server.start()
    await server.stop()

    assert not (tmp_path / "pgdata" / "postmaster.pid").exists(), "the server was stopped"
