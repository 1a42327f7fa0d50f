"""The timeline: every event of an incident, in order, appended and never changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from detector.store.connection import Connection


async def add_timeline(
    connection: Connection, incident_id: int, entries: list[tuple[str, datetime, dict[str, Any]]]
) -> None:
    """Append entries to an incident's timeline."""
    if entries:
        await connection.executemany(
            "INSERT INTO timeline (incident_id, kind, at, detail) VALUES ($1, $2, $3, $4)",
            [(incident_id, kind, at, detail) for kind, at, detail in entries],
        )
