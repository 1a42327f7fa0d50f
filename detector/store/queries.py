"""Read-only views of incidents for the API and the CLI (JSON-ready dicts), and the counts the
open-incidents gauge shows. Reads many tables, writes none."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from detector.store.connection import Connection
from detector.store.related import related_to
from detector.store.supersedes import links_of

_SUMMARY_COLUMNS = """
    id, rule, group_key, group_labels, state, severity, title, summary, component,
    escalation_step, opened_at, last_signal_at, acknowledged_at, acknowledged_by,
    resolved_at, resolved_by
"""


def _json_ready(row: Any) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in dict(row).items()
    }


async def list_incidents(
    connection: Connection, states: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    """Incidents in any of ``states``, newest first."""
    rows = await connection.fetch(
        f"SELECT {_SUMMARY_COLUMNS} FROM incidents WHERE state = ANY($1::text[])"
        " ORDER BY id DESC LIMIT $2",
        list(states),
        limit,
    )
    return [_json_ready(row) for row in rows]


async def incident_detail(connection: Connection, incident_id: int) -> dict[str, Any] | None:
    """One incident with its alerts and full timeline, oldest event first."""
    row = await connection.fetchrow(
        f"SELECT {_SUMMARY_COLUMNS} FROM incidents WHERE id = $1", incident_id
    )
    if row is None:
        return None
    alerts = await connection.fetch(
        "SELECT fingerprint, starts_at, status, ends_at, labels, last_seen_at"
        " FROM incident_alerts WHERE incident_id = $1 ORDER BY starts_at, fingerprint",
        incident_id,
    )
    timeline = await connection.fetch(
        "SELECT at, kind, detail FROM timeline WHERE incident_id = $1 ORDER BY at, id",
        incident_id,
    )
    detail = _json_ready(row)
    detail["alerts"] = [_json_ready(alert) for alert in alerts]
    detail["timeline"] = [_json_ready(event) for event in timeline]
    detail["related"] = [_json_ready(other) for other in await related_to(connection, incident_id)]
    links = await links_of(connection, incident_id)
    detail.update({side: ids for side, ids in links.items() if ids})
    return detail


async def incident_epoch(connection: Connection, incident_id: int) -> int | None:
    """The incident's current epoch (it moves on at every ack, resolve and reopen)."""
    epoch: int | None = await connection.fetchval(
        "SELECT epoch FROM incidents WHERE id = $1", incident_id
    )
    return epoch


async def open_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """How many incidents are open, per state (states with none are absent)."""
    rows = await pool.fetch(
        "SELECT state, count(*) AS n FROM incidents WHERE state <> 'resolved' GROUP BY state"
    )
    return {row["state"]: row["n"] for row in rows}


def json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make rows from other read functions JSON-ready."""
    return [_json_ready(row) for row in rows]
