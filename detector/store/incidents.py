"""Incidents and the alerts each holds: load the state a decision needs and apply a Decision.

Callers own the transaction; every function here takes a connection that is inside one.
``apply`` writes the incident through the owners of the other tables it touches (timeline,
timers, outbox) on that same connection, so a state change, its timers and its pages commit
together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg

from detector.domain.model import (
    AlertState,
    AlertStatus,
    Decision,
    Incident,
    IncidentState,
    Occurrence,
    Severity,
)
from detector.store import outbox, timers
from detector.store.connection import Connection
from detector.store.timeline import add_timeline
from responders.escalation import EscalationPolicy


class IncidentConflict(Exception):
    """Another open incident for the same (rule, group) appeared concurrently."""


@dataclass(frozen=True, slots=True)
class AttachedAlert:
    """A firing occurrence an open incident holds, and when its latest signal arrived."""

    incident_id: int
    fingerprint: str
    starts_at: datetime
    last_seen: datetime
    labels: Mapping[str, str] = field(default_factory=dict)


INCIDENT_COLUMNS = """
    id, rule, group_key, group_labels, state, severity, title, summary, component, policy,
    epoch, escalation_step, escalation_round, escalated_at, paged_channels, opened_at,
    last_signal_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by
"""


def incident_from_row(row: asyncpg.Record, alerts: list[asyncpg.Record] | None = None) -> Incident:
    """Rebuild the frozen incident from its row (and, when given, its alert rows)."""
    attached = _alert_states(alerts or [])
    return Incident(
        id=row["id"],
        rule=row["rule"],
        group_key=row["group_key"],
        group_labels=row["group_labels"],
        state=IncidentState(row["state"]),
        severity=Severity(row["severity"]),
        title=row["title"],
        summary=row["summary"],
        component=row["component"],
        policy=EscalationPolicy.from_json(row["policy"]) if row["policy"] else None,
        epoch=row["epoch"],
        escalation_step=row["escalation_step"],
        escalation_round=row["escalation_round"],
        escalated_at=row["escalated_at"],
        paged=tuple(row["paged_channels"]),
        opened_at=row["opened_at"],
        last_signal_at=row["last_signal_at"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        alerts=attached,
    )


INCIDENT_LOCK = "FOR NO KEY UPDATE"
"""How deciding transactions lock an incident: against each other, not against rows that only
reference it (foreign keys take ``FOR KEY SHARE``, which ``FOR UPDATE`` would block)."""


async def lock_incident(connection: Connection, incident_id: int) -> Incident | None:
    """Load an incident, holding its row lock until the transaction ends, with one of its
    alerts (a firing one if any): what acknowledging, resolving or a timer decides on (a
    window's matchers read that alert's labels).

    The lock is ``FOR NO KEY UPDATE`` (``INCIDENT_LOCK``): deciding engines exclude each other,
    but rows that only reference the incident (a delivery's timeline entry) are written past it,
    so a long signal transaction and a digest's record never wait on each other in a cycle."""
    row = await connection.fetchrow(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1 {INCIDENT_LOCK}", incident_id
    )
    if row is None:
        return None
    alerts = await connection.fetch(_FIRING_OTHER, incident_id, [], [])
    if not alerts:
        alerts = await connection.fetch(f"{_ALERTS} WHERE incident_id = $1 LIMIT 1", incident_id)
    return incident_from_row(row, alerts)


async def lock_group(connection: Connection, rule: str, group_key: str) -> Incident | None:
    """The open incident of a group, else its most recently resolved one, locked; without its
    alerts (``with_alerts`` loads those a decision needs)."""
    row = await connection.fetchrow(
        f"""SELECT {INCIDENT_COLUMNS} FROM incidents WHERE rule = $1 AND group_key = $2
            ORDER BY (state <> 'resolved') DESC, resolved_at DESC NULLS FIRST, id DESC
            LIMIT 1 {INCIDENT_LOCK}""",
        rule,
        group_key,
    )
    return None if row is None else incident_from_row(row)


_ALERTS = (
    "SELECT fingerprint, starts_at, status, ends_at, labels, last_seen_at FROM incident_alerts"
)

_FIRING_OTHER = f"""{_ALERTS}
    WHERE incident_id = $1 AND status = 'firing'
      AND (fingerprint, starts_at) NOT IN (SELECT * FROM unnest($2::text[], $3::timestamptz[]))
    LIMIT 1"""
"""One firing alert of the incident other than the given occurrences (an index probe on the
firing alerts, skipping at most those occurrences)."""


async def with_alerts(
    connection: Connection, incident: Incident, occurrences: Sequence[Occurrence]
) -> Incident:
    """``incident`` with, of its alerts, those of ``occurrences`` and one other still firing if
    there is one (listed first): all that deciding on signals of those occurrences reads. Whether
    every alert has resolved then depends only on them and that one, so the cost follows the
    batch, never the number of alerts the incident holds."""
    fingerprints = [fingerprint for fingerprint, _ in occurrences]
    starts = [starts_at for _, starts_at in occurrences]
    other = await connection.fetch(_FIRING_OTHER, incident.id, fingerprints, starts)
    touched = await connection.fetch(
        f"""{_ALERTS} WHERE incident_id = $1 AND (fingerprint, starts_at) IN (
              SELECT * FROM unnest($2::text[], $3::timestamptz[]))""",
        incident.id,
        fingerprints,
        starts,
    )
    return replace(incident, alerts=_alert_states([*other, *touched]))


async def last_seen(connection: Connection, incident_id: int) -> datetime | None:
    """When any alert of the incident last arrived, replays included (for silence checks)."""
    value: datetime | None = await connection.fetchval(
        """SELECT max(s.last_received_at) FROM incident_alerts a
           JOIN signals s ON s.fingerprint = a.fingerprint AND s.starts_at = a.starts_at
           WHERE a.incident_id = $1""",
        incident_id,
    )
    return value


async def attached_alerts(connection: Connection) -> list[AttachedAlert]:
    """Firing occurrences of open incidents that came from Alertmanager and have no stored
    resolved signal yet (one pending in the inbox, or one reconciliation already wrote)."""
    rows = await connection.fetch(
        """SELECT a.incident_id, a.fingerprint, a.starts_at, a.labels,
                  max(s.last_received_at) AS last_seen
           FROM incidents i
           JOIN incident_alerts a ON a.incident_id = i.id AND a.status = 'firing'
           JOIN signals s ON s.source = 'alertmanager' AND s.fingerprint = a.fingerprint
                         AND s.starts_at = a.starts_at
           WHERE i.state <> 'resolved'
             AND NOT EXISTS (
               SELECT 1 FROM signals r
               WHERE r.source = 'alertmanager' AND r.fingerprint = a.fingerprint
                 AND r.starts_at = a.starts_at AND r.status = 'resolved')
           GROUP BY a.incident_id, a.fingerprint, a.starts_at
           ORDER BY a.incident_id, a.fingerprint, a.starts_at"""
    )
    return [
        AttachedAlert(
            r["incident_id"], r["fingerprint"], r["starts_at"], r["last_seen"], r["labels"]
        )
        for r in rows
    ]


async def apply(connection: Connection, decision: Decision, now: datetime) -> int | None:
    """Write a decision: incident row, alerts, timeline, timers and outbox pages. Returns the id."""
    incident = decision.incident
    if incident is None:
        return None
    incident_id = await _save_incident(connection, incident, now)
    await _save_alerts(connection, incident_id, decision.changed_alerts)
    await add_timeline(
        connection, incident_id, [(e.kind, e.at, dict(e.detail)) for e in decision.timeline]
    )
    await timers.add_incident_timers(connection, incident_id, incident.epoch, decision.timers)
    await outbox.add_pages(connection, incident, incident_id, decision.pages, now)
    return incident_id


def _alert_states(rows: Sequence[asyncpg.Record]) -> dict[Occurrence, AlertState]:
    return {
        (a["fingerprint"], a["starts_at"]): AlertState(
            fingerprint=a["fingerprint"],
            starts_at=a["starts_at"],
            status=AlertStatus(a["status"]),
            ends_at=a["ends_at"],
            labels=a["labels"],
            last_seen_at=a["last_seen_at"],
        )
        for a in rows
    }


async def _save_alerts(
    connection: Connection, incident_id: int, alerts: Sequence[AlertState]
) -> None:
    """Upsert the changed alerts in one statement (one occurrence each, as decided): row by
    row, a storm's 20,000 alerts were 20,000 executions of their own."""
    if alerts:
        await connection.execute(
            """INSERT INTO incident_alerts
                 (incident_id, fingerprint, starts_at, status, ends_at, labels, last_seen_at)
               SELECT $1, a.* FROM unnest($2::text[], $3::timestamptz[], $4::text[],
                                          $5::timestamptz[], $6::jsonb[], $7::timestamptz[])
                 AS a (fingerprint, starts_at, status, ends_at, labels, last_seen_at)
               ON CONFLICT (incident_id, fingerprint, starts_at) DO UPDATE
                 SET status = EXCLUDED.status, ends_at = EXCLUDED.ends_at,
                     last_seen_at = EXCLUDED.last_seen_at""",
            incident_id,
            [a.fingerprint for a in alerts],
            [a.starts_at for a in alerts],
            [a.status.value for a in alerts],
            [a.ends_at for a in alerts],
            [dict(a.labels) for a in alerts],
            [a.last_seen_at for a in alerts],
        )


async def _save_incident(connection: Connection, incident: Incident, now: datetime) -> int:
    values = (
        incident.state.value,
        incident.severity.value,
        incident.title,
        incident.summary,
        incident.epoch,
        incident.escalation_step,
        incident.last_signal_at,
        incident.acknowledged_at,
        incident.acknowledged_by,
        incident.resolved_at,
        incident.resolved_by,
        now,
        list(incident.paged),
        incident.escalation_round,
        incident.escalated_at,
    )
    if incident.id is not None:
        await connection.execute(
            """UPDATE incidents SET state = $2, severity = $3, title = $4, summary = $5, epoch = $6,
                 escalation_step = $7, last_signal_at = $8, acknowledged_at = $9,
                 acknowledged_by = $10, resolved_at = $11, resolved_by = $12, updated_at = $13,
                 paged_channels = $14, escalation_round = $15, escalated_at = $16
               WHERE id = $1""",
            incident.id,
            *values,
        )
        return incident.id
    new_id: int | None = await connection.fetchval(
        """INSERT INTO incidents (state, severity, title, summary, epoch, escalation_step,
             last_signal_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by, updated_at,
             paged_channels, escalation_round, escalated_at, rule, group_key, group_labels,
             component, policy, opened_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                   $19, $20, $21)
           ON CONFLICT (rule, group_key) WHERE state <> 'resolved' DO NOTHING RETURNING id""",
        *values,
        incident.rule,
        incident.group_key,
        dict(incident.group_labels),
        incident.component,
        incident.policy.to_json() if incident.policy else None,
        incident.opened_at,
    )
    if new_id is None:
        raise IncidentConflict(f"{incident.rule} {incident.group_key}")
    return new_id


async def mark_audited(connection: Connection, ids: Sequence[int], now: datetime) -> None:
    """Note that the incidents ``ids`` were audited at ``now`` (``store.audit``)."""
    if ids:
        await connection.execute(
            "UPDATE incidents SET audited_at = $2 WHERE id = ANY($1::bigint[])", list(ids), now
        )
