"""Pruning what only the engine needed: fired timers, finished deliveries, and signals that no
open incident holds, once older than the retention period. Incidents and timelines are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from detector.store.incidents import Connection, rows_affected

_BATCH = 10_000

_STATEMENTS = {
    "timers": """DELETE FROM timers WHERE id IN (
        SELECT id FROM timers WHERE fired_at < $1 LIMIT $2)""",
    "outbox": """DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE state <> 'pending' AND created_at < $1 LIMIT $2)""",
    "signals": """DELETE FROM signals WHERE id IN (
        SELECT s.id FROM signals s
        WHERE s.last_received_at < $1
          AND NOT EXISTS (SELECT 1 FROM pending_signals p WHERE p.signal_id = s.id)
          AND NOT EXISTS (
            SELECT 1 FROM incident_alerts a JOIN incidents i ON i.id = a.incident_id
            WHERE a.fingerprint = s.fingerprint AND a.starts_at = s.starts_at
              AND i.state <> 'resolved')
        LIMIT $2)""",
}


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows removed per table."""

    counts: dict[str, int]


async def prune(connection: Connection, cutoff: datetime) -> Pruned:
    """Delete rows older than ``cutoff``, in bounded batches so no lock is held for long."""
    counts: dict[str, int] = {}
    for table, statement in _STATEMENTS.items():
        total = 0
        while True:
            status: str = await connection.execute(statement, cutoff, _BATCH)
            deleted = rows_affected(status)
            total += deleted
            if deleted < _BATCH:
                break
        counts[table] = total
    return Pruned(counts)
