"""The self-audit's reads and repairs: open incidents not looked at for a while, the kinds of
their pending timers in their current epoch, and the timer put back where one is missing. It
owns no table: timers go in through ``timers``, the audit mark through ``incidents``.

The incidents are locked with ``SKIP LOCKED``: one a timer or an ack is changing right now is
left for a later pass, and two replicas auditing at once share the work instead of repairing
the same incident twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from detector.domain.escalation import Repair
from detector.domain.model import Incident, TimerKind
from detector.store import timers
from detector.store.connection import Connection
from detector.store.incidents import INCIDENT_COLUMNS, incident_from_row
from detector.store.timeline import add_timeline


@dataclass(frozen=True, slots=True)
class Audited:
    """An open incident under a policy, and the kinds of its pending timers in its epoch."""

    incident: Incident
    pending: frozenset[TimerKind]


async def lock_unaudited(
    connection: Connection, audited_before: datetime, limit: int
) -> list[Audited]:
    """Up to ``limit`` open incidents with a policy, not audited since ``audited_before``
    (never audited first), locked until the transaction ends."""
    rows = await connection.fetch(
        f"""SELECT {INCIDENT_COLUMNS},
                   ARRAY(SELECT DISTINCT t.kind FROM timers t
                         WHERE t.incident_id = incidents.id AND t.fired_at IS NULL
                           AND t.epoch = incidents.epoch) AS pending
            FROM incidents
            WHERE state <> 'resolved' AND policy IS NOT NULL
              AND (audited_at IS NULL OR audited_at < $1)
            ORDER BY audited_at NULLS FIRST, id LIMIT $2
            FOR NO KEY UPDATE OF incidents SKIP LOCKED""",
        audited_before,
        limit,
    )
    return [
        Audited(incident_from_row(row), frozenset(TimerKind(kind) for kind in row["pending"]))
        for row in rows
    ]


async def repair(connection: Connection, incident: Incident, found: Repair, now: datetime) -> None:
    """Schedule the missing timer in the incident's epoch and say so on its timeline."""
    assert incident.id is not None  # loaded from its row
    await timers.add_incident_timers(connection, incident.id, incident.epoch, [found.timer])
    detail = {
        "problem": found.problem.value,
        "timer": found.timer.kind.value,
        "due_at": found.timer.due_at.isoformat(),
        **dict(found.timer.payload),
    }
    await add_timeline(connection, incident.id, [("audit.repaired", now, detail)])
