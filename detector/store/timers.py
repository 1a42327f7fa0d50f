"""Durable timers: claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, fired once.

A claim leases due rows to one replica; the firing transaction marks the row fired only if this
replica still holds the lease, so a timer fires exactly once however many replicas run. Timers
are scheduled inside the transaction of the change that asks for them (an incident decision,
a condition's new check time), so neither commits without the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from detector.domain.model import Timer, TimerKind, TimerSpec
from detector.store.connection import Connection, rows_affected


async def add_incident_timers(
    connection: Connection, incident_id: int, epoch: int, timers: Sequence[TimerSpec]
) -> None:
    """Schedule an incident's timers, stamped with its epoch (a later epoch makes them stale)."""
    if timers:
        await connection.executemany(
            "INSERT INTO timers (incident_id, kind, due_at, epoch, payload)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(incident_id, t.kind.value, t.due_at, epoch, dict(t.payload)) for t in timers],
        )


async def add_condition_checks(
    connection: Connection, groups: Sequence[tuple[str, str]], due_at: datetime
) -> int:
    """Schedule a condition check at ``due_at`` for each (rule, group key); returns how many."""
    if not groups:
        return 0
    result: str = await connection.execute(
        """INSERT INTO timers (rule, group_key, kind, due_at, epoch, payload)
           SELECT rule, group_key, $3, $4, 0, '{}'
           FROM unnest($1::text[], $2::text[]) AS g(rule, group_key)""",
        [rule for rule, _ in groups],
        [group_key for _, group_key in groups],
        TimerKind.CONDITION_CHECK.value,
        due_at,
    )
    return rows_affected(result)


async def next_due(connection: Connection, now: datetime) -> datetime | None:
    """When the earliest unfired timer of any kind that nobody holds falls due (an index scan
    in due order), so an idle engine wakes for it instead of a whole idle interval later."""
    due: datetime | None = await connection.fetchval(
        """SELECT due_at FROM timers
           WHERE fired_at IS NULL AND (lease_until IS NULL OR lease_until < $1)
           ORDER BY due_at LIMIT 1""",
        now,
    )
    return due


async def claim_due(
    connection: Connection,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    notices: bool = False,
    impact: bool = False,
) -> list[Timer]:
    """Lease up to ``limit`` due timers to ``owner``, oldest due first: the notice timers when
    ``notices``, the impact refreshes when ``impact``, the others otherwise (each has its own
    stage)."""
    rows = await connection.fetch(
        """UPDATE timers SET lease_owner = $1, lease_until = $2::timestamptz + $3::interval
           WHERE id IN (
             SELECT id FROM timers
             WHERE fired_at IS NULL AND due_at <= $2 AND (lease_until IS NULL OR lease_until < $2)
               AND (kind LIKE 'notice\\_%') = $5 AND (kind LIKE 'impact\\_%') = $6
             ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)
           RETURNING id, incident_id, kind, due_at, epoch, payload, rule, group_key""",
        owner,
        now,
        lease,
        limit,
        notices,
        impact,
    )
    timers = [
        Timer(
            id=row["id"],
            incident_id=row["incident_id"],
            kind=TimerKind(row["kind"]),
            due_at=row["due_at"],
            epoch=row["epoch"],
            payload=row["payload"],
            rule=row["rule"],
            group_key=row["group_key"],
        )
        for row in rows
    ]
    return sorted(timers, key=lambda timer: timer.due_at)


async def renew_leases(
    connection: Connection, ids: Sequence[int], owner: str, until: datetime
) -> int:
    """Extend ``owner``'s leases on the unfired timers ``ids`` to ``until``: while it works
    through them, or to try a failed one again only then. Returns how many."""
    result: str = await connection.execute(
        """UPDATE timers SET lease_until = $3
           WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND fired_at IS NULL""",
        list(ids),
        owner,
        until,
    )
    return rows_affected(result)


async def release_leases(connection: Connection, ids: Sequence[int], owner: str) -> int:
    """End ``owner``'s leases on the unfired timers ``ids``, which it will not fire after all:
    any replica may claim them at once. Returns how many."""
    result: str = await connection.execute(
        """UPDATE timers SET lease_until = NULL
           WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND fired_at IS NULL""",
        list(ids),
        owner,
    )
    return rows_affected(result)


async def mark_fired(
    connection: Connection, timer_id: int, owner: str, outcome: str, now: datetime
) -> bool:
    """Mark a leased timer fired; False if another replica took it over (then do nothing)."""
    result: str = await connection.execute(
        """UPDATE timers SET fired_at = $3, outcome = $4
           WHERE id = $1 AND lease_owner = $2 AND fired_at IS NULL""",
        timer_id,
        owner,
        now,
        outcome,
    )
    return result == "UPDATE 1"


async def release_deferred(connection: Connection, now: datetime) -> int:
    """Make every escalation a silence or maintenance window holds due now (after a rules
    reload): each is decided again, pages if no window covers its incident any more, and is
    held again, until the window's current end, if one still does. Returns how many."""
    result: str = await connection.execute(
        """UPDATE timers SET due_at = $1
           WHERE fired_at IS NULL AND kind = $2 AND payload ? 'held_by' AND due_at > $1""",
        now,
        TimerKind.ESCALATE.value,
    )
    return rows_affected(result)


async def release_superseded(connection: Connection, superseding_id: int, now: datetime) -> int:
    """Make every escalation the incident ``superseding_id`` defers due now (it resolved): each
    is decided again, pages unless another superseding incident is open. Returns how many."""
    result: str = await connection.execute(
        """UPDATE timers SET due_at = $2
           WHERE fired_at IS NULL AND payload ? 'superseded_by'
             AND payload ->> 'superseded_by' = $1 AND kind = $3 AND due_at > $2""",
        str(superseding_id),
        now,
        TimerKind.ESCALATE.value,
    )
    return rows_affected(result)


async def prune_fired(connection: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` timers fired before ``cutoff``; returns how many."""
    result: str = await connection.execute(
        """DELETE FROM timers WHERE id IN (
             SELECT id FROM timers WHERE fired_at < $1 LIMIT $2)""",
        cutoff,
        limit,
    )
    return rows_affected(result)
