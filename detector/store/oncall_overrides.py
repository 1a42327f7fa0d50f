"""Overrides stored in the database (made through the API or the CLI): added, listed, deleted
(kept with who deleted them), and read by the engine when an escalation step resolves who is on
call. They win over overrides written in the on-call files (``responders.oncall.resolver``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from detector.store.connection import Connection
from responders.oncall.model import Override

_COLUMNS = "id, person, starts_at, ends_at, created_by"


def _override(row: asyncpg.Record) -> Override:
    return Override(
        person=row["person"],
        start=row["starts_at"],
        end=row["ends_at"],
        created_by=row["created_by"],
        id=row["id"],
    )


async def add(
    connection: Connection,
    schedule: str,
    person: str,
    start: datetime,
    end: datetime,
    created_by: str,
    now: datetime,
) -> Override:
    """Store an override for ``schedule`` and return it with its id."""
    row = await connection.fetchrow(
        f"""INSERT INTO oncall_overrides (schedule, person, starts_at, ends_at, created_by,
                                          created_at)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
        schedule,
        person,
        start,
        end,
        created_by,
        now,
    )
    assert row is not None  # INSERT … RETURNING always returns the row
    return _override(row)


async def overlapping(
    connection: Connection, schedules: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[Override]]:
    """Live overrides of ``schedules`` that overlap [start, end), by schedule, oldest first (a
    later override wins where two overlap)."""
    rows = await connection.fetch(
        f"""SELECT schedule, {_COLUMNS} FROM oncall_overrides
            WHERE schedule = ANY($1::text[]) AND deleted_at IS NULL
              AND ends_at > $2 AND starts_at < $3
            ORDER BY id""",
        list(schedules),
        start,
        end,
    )
    found: dict[str, list[Override]] = {}
    for row in rows:
        found.setdefault(row["schedule"], []).append(_override(row))
    return found


async def current_and_future(
    connection: Connection, schedule: str, now: datetime
) -> list[Override]:
    """``schedule``'s live overrides that have not ended, soonest first."""
    rows = await connection.fetch(
        f"""SELECT {_COLUMNS} FROM oncall_overrides
            WHERE schedule = $1 AND deleted_at IS NULL AND ends_at > $2
            ORDER BY starts_at, id""",
        schedule,
        now,
    )
    return [_override(row) for row in rows]


async def delete(
    connection: Connection, schedule: str, override_id: int, by: str, now: datetime
) -> bool:
    """Delete a live override of ``schedule``; False when there is none with that id."""
    row = await connection.fetchrow(
        """UPDATE oncall_overrides SET deleted_by = $3, deleted_at = $4
           WHERE id = $1 AND schedule = $2 AND deleted_at IS NULL RETURNING id""",
        override_id,
        schedule,
        by,
        now,
    )
    return row is not None
