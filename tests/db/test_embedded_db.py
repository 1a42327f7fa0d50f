"""The embedded PostgreSQL the service starts when no database URL is configured."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from detector.embedded_db import EmbeddedPostgres


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
