"""Related incidents: links between incidents of one component opened close together, stored
both ways. The decision which incidents to link is ``domain.related``; a link and its timeline
lines are written in the transaction that opens the incident."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from detector.domain.related import OpenedIncident, link_entries
from detector.store.connection import Connection
from detector.store.timeline import add_timeline


async def opened_between(
    connection: Connection, component: str, since: datetime, until: datetime
) -> list[OpenedIncident]:
    """Incidents of ``component`` opened in [since, until]."""
    rows = await connection.fetch(
        """SELECT id, rule, title, component, opened_at FROM incidents
           WHERE component = $1 AND opened_at BETWEEN $2 AND $3
           ORDER BY opened_at, id""",
        component,
        since,
        until,
    )
    return [
        OpenedIncident(r["id"], r["rule"], r["title"], r["component"], r["opened_at"]) for r in rows
    ]


async def link(
    connection: Connection,
    opened: OpenedIncident,
    others: Sequence[OpenedIncident],
    now: datetime,
) -> None:
    """Record each link both ways, with a timeline line on both incidents."""
    if not others:
        return
    await connection.executemany(
        """INSERT INTO related_incidents (incident_id, related_id, linked_at)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
        [
            pair
            for other in others
            for pair in ((opened.id, other.id, now), (other.id, opened.id, now))
        ],
    )
    for incident_id, entry in link_entries(opened, others, now):
        await add_timeline(connection, incident_id, [(entry.kind, entry.at, dict(entry.detail))])


async def related_to(connection: Connection, incident_id: int) -> list[dict[str, Any]]:
    """The incidents linked to one, oldest first, as the API shows them."""
    rows = await connection.fetch(
        """SELECT i.id, i.rule, i.title, i.state, i.severity, i.component, i.opened_at,
                  i.resolved_at
           FROM related_incidents r JOIN incidents i ON i.id = r.related_id
           WHERE r.incident_id = $1
           ORDER BY i.opened_at, i.id""",
        incident_id,
    )
    return [dict(row) for row in rows]
