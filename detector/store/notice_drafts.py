"""First notices waiting to go public: through a veto window, or for a person to publish.

A draft is written in the transaction that opened its incident; the commander may edit or veto
it while it waits, and publishing marks it so a second publish (a replica, a retried request)
finds nothing left to do. Callers own the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from detector.store.connection import Connection

_COLUMNS = """incident_id, component, component_status, name, body, next_update_at, publish_at,
    created_at, edited_by, vetoed_by, published_at"""


@dataclass(frozen=True, slots=True)
class Draft:
    """A first notice as it waits (or as it was published or vetoed)."""

    incident_id: int
    component: str
    component_status: str
    name: str
    body: str
    next_update_at: datetime
    publish_at: datetime | None
    created_at: datetime
    edited_by: str | None = None
    vetoed_by: str | None = None
    published_at: datetime | None = None

    @property
    def pending(self) -> bool:
        """Neither published nor vetoed yet."""
        return self.published_at is None and self.vetoed_by is None


async def add(connection: Connection, draft: Draft) -> None:
    """Keep a new draft (an incident has at most one: a second is ignored)."""
    await connection.execute(
        """INSERT INTO notice_drafts (incident_id, component, component_status, name, body,
             next_update_at, publish_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (incident_id) DO NOTHING""",
        draft.incident_id,
        draft.component,
        draft.component_status,
        draft.name,
        draft.body,
        draft.next_update_at,
        draft.publish_at,
        draft.created_at,
    )


async def lock(connection: Connection, incident_id: int) -> Draft | None:
    """The incident's draft, locked until the transaction ends."""
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM notice_drafts WHERE incident_id = $1 FOR UPDATE", incident_id
    )
    return None if row is None else Draft(**dict(row))


async def get(connection: Connection, incident_id: int) -> Draft | None:
    """The incident's draft, to show."""
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM notice_drafts WHERE incident_id = $1", incident_id
    )
    return None if row is None else Draft(**dict(row))


async def edit(
    connection: Connection, incident_id: int, name: str, body: str, by: str, at: datetime
) -> None:
    """Replace a pending draft's words."""
    await connection.execute(
        """UPDATE notice_drafts SET name = $2, body = $3, edited_by = $4, edited_at = $5
           WHERE incident_id = $1""",
        incident_id,
        name,
        body,
        by,
        at,
    )


async def veto(connection: Connection, incident_id: int, by: str, at: datetime) -> None:
    """Stop a pending draft from going out."""
    await connection.execute(
        "UPDATE notice_drafts SET vetoed_by = $2, vetoed_at = $3 WHERE incident_id = $1",
        incident_id,
        by,
        at,
    )


async def mark_published(connection: Connection, incident_id: int, at: datetime) -> None:
    """Record that the draft went public."""
    await connection.execute(
        "UPDATE notice_drafts SET published_at = $2 WHERE incident_id = $1", incident_id, at
    )
