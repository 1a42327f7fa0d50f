"""The probes table: per (journey, location) the next due run (claimed once across replicas),
the streaks that decide when the journey fires, and the last results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.probes.thresholds import Health
from detector.store.connection import Connection


@dataclass(frozen=True, slots=True)
class Slot:
    """A journey's next run after now, as the caller's schedule says: a new row's first run,
    and where a claimed row moves to."""

    journey: str
    next_due: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """A run this replica claimed: the journey and when it was due."""

    journey: str
    due_at: datetime


async def add(connection: Connection, location: str, slots: Sequence[Slot]) -> None:
    """Rows for journeys this location has not run yet, due at their first slot."""
    await connection.execute(
        """INSERT INTO probes (journey, location, next_due_at)
           SELECT journey, $1, first_due
           FROM unnest($2::text[], $3::timestamptz[]) AS s(journey, first_due)
           ON CONFLICT DO NOTHING""",
        location,
        [slot.journey for slot in slots],
        [slot.next_due for slot in slots],
    )


async def claim_due(
    connection: Connection, location: str, slots: Sequence[Slot], owner: str, now: datetime
) -> list[Claim]:
    """Claim the due runs among ``slots``, moving each to its next slot.

    The rows are locked with SKIP LOCKED and moved on in one statement: a replica claiming at
    the same moment sees them locked, then not due, so each slot runs once.
    """
    rows = await connection.fetch(
        """WITH schedule AS (
             SELECT * FROM unnest($2::text[], $3::timestamptz[]) AS s(journey, next_due)),
           due AS (
             SELECT p.journey, p.next_due_at FROM probes p JOIN schedule s USING (journey)
             WHERE p.location = $1 AND p.next_due_at <= $4
             FOR UPDATE OF p SKIP LOCKED)
           UPDATE probes p SET next_due_at = s.next_due, claimed_by = $5, claimed_at = $4
           FROM due, schedule s
           WHERE p.location = $1 AND p.journey = due.journey AND s.journey = due.journey
           RETURNING p.journey, due.next_due_at AS due_at""",
        location,
        [slot.journey for slot in slots],
        [slot.next_due for slot in slots],
        now,
        owner,
    )
    return [Claim(row["journey"], row["due_at"]) for row in rows]


async def lock_health(connection: Connection, journey: str, location: str) -> Health:
    """The journey's streaks at a location, locked until the transaction ends."""
    row = await connection.fetchrow(
        "SELECT failures, successes, failing_since, firing_since FROM probes"
        " WHERE journey = $1 AND location = $2 FOR UPDATE",
        journey,
        location,
    )
    if row is None:
        return Health()
    return Health(row["failures"], row["successes"], row["failing_since"], row["firing_since"])


async def save_run(
    connection: Connection,
    journey: str,
    location: str,
    health: Health,
    result: dict[str, Any],
    at: datetime,
    labels: dict[str, str],
) -> None:
    """Keep the new streaks and the run's result (and, for a failed run, as the last failure);
    while firing, the labels of the standing signal."""
    await connection.execute(
        """UPDATE probes SET failures = $3, successes = $4, failing_since = $5,
             firing_since = $6, last_run_at = $7, last_success = $8, last_result = $9,
             last_failure = CASE WHEN $8 THEN last_failure ELSE $9 END,
             firing_labels = CASE WHEN $6::timestamptz IS NULL THEN NULL ELSE $10::jsonb END
           WHERE journey = $1 AND location = $2""",
        journey,
        location,
        health.failures,
        health.successes,
        health.failing_since,
        health.firing_since,
        at,
        bool(result["success"]),
        result,
        labels,
    )


@dataclass(frozen=True, slots=True)
class Retired:
    """A journey no longer run here whose signal was firing: what resolves it."""

    labels: dict[str, str]
    firing_since: datetime


async def retire(connection: Connection, location: str, running: Sequence[str]) -> list[Retired]:
    """Drop the rows of journeys no longer run at ``location``; the firing ones are returned
    so the caller resolves their signals in the same transaction."""
    rows = await connection.fetch(
        """DELETE FROM probes WHERE location = $1 AND NOT journey = ANY($2::text[])
           RETURNING firing_labels, firing_since""",
        location,
        list(running),
    )
    return [
        Retired(row["firing_labels"], row["firing_since"])
        for row in rows
        if row["firing_since"] is not None and row["firing_labels"] is not None
    ]


async def latest(connection: Connection) -> list[dict[str, Any]]:
    """Every journey at every location with its standing and last results, by name."""
    rows = await connection.fetch(
        """SELECT journey, location, next_due_at, claimed_by, failures, successes,
                  failing_since, firing_since, last_run_at, last_success, last_result,
                  last_failure
           FROM probes ORDER BY journey, location"""
    )
    return [dict(row) for row in rows]
