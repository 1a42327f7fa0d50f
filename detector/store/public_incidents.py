"""Public incidents, their updates, and the links from internal incidents to them.

One outage is one public incident per component: the first internal incident of a component
opens it, later ones join it (and may raise its impact), and the component shows the worst level
among the links still open. Every write notifies the status page at commit. Callers own the
transaction; every function takes a connection inside one.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from detector.store import wakeup
from detector.store.connection import Connection, rows_affected
from responders.statuspage.model import (
    AffectedComponent,
    ComponentLevel,
    Impact,
    IncidentStatus,
    PublicIncident,
    PublicUpdate,
    worst,
)

PUBLIC_ID_ALPHABET = string.ascii_lowercase + string.digits
PUBLIC_ID_LENGTH = 12
_COLUMNS = """id, public_id, component, name, status, impact, components, created_at, updated_at,
    monitoring_at, resolved_at, postmortem_body, postmortem_published_at"""


class NotOpen(Exception):
    """The public incident does not exist or is already resolved."""


@dataclass(frozen=True, slots=True)
class FirstNotice:
    """What a newly opened public incident says first (its ``investigating`` update)."""

    name: str
    body: str
    next_update_at: datetime | None


@dataclass(frozen=True, slots=True)
class Joined:
    """The public incident an internal incident is now part of; ``opened`` when it was new."""

    incident: PublicIncident
    opened: bool


@dataclass(frozen=True, slots=True)
class Left:
    """The public incident an internal incident left, and how many others still hold it open."""

    incident: PublicIncident
    remaining: int


def new_public_id() -> str:
    """A random, shortlink-safe id (Statuspage's 12 lowercase base36 characters)."""
    return "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))


async def open_or_join(
    connection: Connection,
    incident_id: int,
    component: str,
    level: ComponentLevel,
    notice: FirstNotice,
    at: datetime,
) -> Joined:
    """Link internal incident ``incident_id`` to the open public incident of ``component``, or
    open one with ``notice`` as its first update. An incident already linked stays where it is.
    Joining publishes nothing; it raises the impact when ``level`` is worse."""
    linked = await of_incident(connection, incident_id)
    if linked is not None:
        return Joined(linked, opened=False)
    public_id = await connection.fetchval(
        """INSERT INTO public_incidents (public_id, component, name, status, impact, components,
             created_at, updated_at)
           VALUES ($1, $2, $3, 'investigating', $4, ARRAY[$2], $5, $5)
           ON CONFLICT (component) WHERE resolved_at IS NULL DO NOTHING RETURNING id""",
        new_public_id(),
        component,
        notice.name,
        level.impact.value,
        at,
    )
    opened = public_id is not None
    if not opened:
        public_id = await _join_open(connection, component, level, at)
        if public_id is None:  # resolved between the insert and the lock: open anew
            return await open_or_join(connection, incident_id, component, level, notice, at)
    await connection.execute(
        """INSERT INTO public_incident_links
           (incident_id, public_incident_id, component, component_status, joined_at)
           VALUES ($1, $2, $3, $4, $5)""",
        incident_id,
        public_id,
        component,
        level.value,
        at,
    )
    if opened:
        await _insert_update(
            connection,
            public_id,
            IncidentStatus.INVESTIGATING,
            notice.body,
            notice.next_update_at,
            at,
        )
    await wakeup.notify(connection, wakeup.STATUSPAGE_CHANNEL)
    return Joined(await _load(connection, public_id), opened=opened)


async def _join_open(
    connection: Connection, component: str, level: ComponentLevel, at: datetime
) -> int | None:
    """Lock the open public incident of ``component`` and raise its impact to ``level``'s."""
    row = await connection.fetchrow(
        "SELECT id, impact FROM public_incidents"
        " WHERE component = $1 AND resolved_at IS NULL FOR UPDATE",
        component,
    )
    if row is None:
        return None
    if level.impact.rank > Impact(row["impact"]).rank:
        await connection.execute(
            "UPDATE public_incidents SET impact = $2, updated_at = $3 WHERE id = $1",
            row["id"],
            level.impact.value,
            at,
        )
    identifier: int = row["id"]
    return identifier


async def leave(connection: Connection, incident_id: int, at: datetime) -> Left | None:
    """Mark internal incident ``incident_id`` resolved in its public incident; None when it never
    joined one. ``remaining == 0`` means the public incident may resolve."""
    public_id = await connection.fetchval(
        """UPDATE public_incident_links SET left_at = $2
           WHERE incident_id = $1 RETURNING public_incident_id""",
        incident_id,
        at,
    )
    if public_id is None:
        return None
    remaining: int = await connection.fetchval(
        "SELECT count(*) FROM public_incident_links"
        " WHERE public_incident_id = $1 AND left_at IS NULL",
        public_id,
    )
    await wakeup.notify(connection, wakeup.STATUSPAGE_CHANNEL)
    return Left(await _load(connection, public_id), remaining)


async def add_update(
    connection: Connection,
    public_incident_id: int,
    status: IncidentStatus,
    body: str,
    next_update_at: datetime | None,
    at: datetime,
) -> PublicUpdate:
    """Publish an update; ``resolved`` resolves the incident (every link leaves), ``monitoring``
    records when monitoring began. Raises :class:`NotOpen` on a missing or resolved incident and
    ValueError for ``postmortem`` (see :func:`publish_postmortem`)."""
    if status is IncidentStatus.POSTMORTEM:
        raise ValueError("a postmortem is published with publish_postmortem")
    row = await connection.fetchrow(
        "SELECT id FROM public_incidents WHERE id = $1 AND resolved_at IS NULL FOR UPDATE",
        public_incident_id,
    )
    if row is None:
        raise NotOpen(public_incident_id)
    if status is IncidentStatus.RESOLVED:
        await connection.execute(
            "UPDATE public_incident_links SET left_at = $2"
            " WHERE public_incident_id = $1 AND left_at IS NULL",
            public_incident_id,
            at,
        )
    await connection.execute(
        """UPDATE public_incidents SET status = $2, updated_at = $3,
             monitoring_at = CASE WHEN $2 = 'monitoring' THEN coalesce(monitoring_at, $3)
                                  ELSE monitoring_at END,
             resolved_at = CASE WHEN $2 = 'resolved' THEN $3 END
           WHERE id = $1""",
        public_incident_id,
        status.value,
        at,
    )
    update = await _insert_update(
        connection,
        public_incident_id,
        status,
        body,
        None if status.is_final else next_update_at,
        at,
    )
    await wakeup.notify(connection, wakeup.STATUSPAGE_CHANNEL)
    return update


async def publish_postmortem(
    connection: Connection, public_incident_id: int, body: str, at: datetime
) -> PublicIncident:
    """Attach the post-incident notice to a resolved incident (publishing again replaces it).
    Raises :class:`NotOpen` when the incident is missing or not resolved yet."""
    status = await connection.execute(
        """UPDATE public_incidents SET status = 'postmortem', postmortem_body = $2,
             postmortem_published_at = $3, updated_at = $3
           WHERE id = $1 AND resolved_at IS NOT NULL""",
        public_incident_id,
        body,
        at,
    )
    if not rows_affected(status):
        raise NotOpen(public_incident_id)
    await wakeup.notify(connection, wakeup.STATUSPAGE_CHANNEL)
    return await _load(connection, public_incident_id)


async def of_incident(connection: Connection, incident_id: int) -> PublicIncident | None:
    """The public incident internal incident ``incident_id`` joined, if any."""
    public_id = await connection.fetchval(
        "SELECT public_incident_id FROM public_incident_links WHERE incident_id = $1",
        incident_id,
    )
    return None if public_id is None else await _load(connection, public_id)


async def open_for(connection: Connection, component: str) -> PublicIncident | None:
    """The open public incident of ``component``, if any."""
    public_id = await connection.fetchval(
        "SELECT id FROM public_incidents WHERE component = $1 AND resolved_at IS NULL", component
    )
    return None if public_id is None else await _load(connection, public_id)


async def by_public_id(connection: Connection, public_id: str) -> PublicIncident | None:
    """A public incident by the id customers see."""
    found = await connection.fetchval(
        "SELECT id FROM public_incidents WHERE public_id = $1", public_id
    )
    return None if found is None else await _load(connection, found)


async def recent(connection: Connection, since: datetime) -> list[PublicIncident]:
    """Every open public incident and every one created since ``since``, newest first, with
    their updates."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM public_incidents"
        " WHERE resolved_at IS NULL OR created_at >= $1 ORDER BY created_at DESC, id DESC",
        since,
    )
    return await _with_updates(connection, rows)


async def open_levels(connection: Connection) -> dict[str, ComponentLevel]:
    """Per component, the worst level among the internal incidents still open in its public
    incidents (components without one are absent)."""
    rows = await connection.fetch(
        "SELECT component, array_agg(component_status) AS levels FROM public_incident_links"
        " WHERE left_at IS NULL GROUP BY component"
    )
    return {
        row["component"]: worst([ComponentLevel(level) for level in row["levels"]]) for row in rows
    }


async def _insert_update(
    connection: Connection,
    public_incident_id: int,
    status: IncidentStatus,
    body: str,
    next_update_at: datetime | None,
    at: datetime,
) -> PublicUpdate:
    """Record an update with each affected component's status before and after it."""
    affected = await _affected(connection, public_incident_id, status)
    public_id = new_public_id()
    await connection.execute(
        """INSERT INTO public_incident_updates (public_id, public_incident_id, status, body,
             created_at, display_at, next_update_at, affected_components)
           VALUES ($1, $2, $3, $4, $5, $5, $6, $7)""",
        public_id,
        public_incident_id,
        status.value,
        body,
        at,
        next_update_at,
        [
            {"component": a.component, "old_status": a.old_status, "new_status": a.new_status}
            for a in affected
        ],
    )
    return PublicUpdate(public_id, status, body, at, at, next_update_at, affected)


async def _affected(
    connection: Connection, public_incident_id: int, status: IncidentStatus
) -> tuple[AffectedComponent, ...]:
    """Each of the incident's components: its level at the previous update, and now (the worst
    of its open links; operational once resolved)."""
    row = await connection.fetchrow(
        """SELECT p.components,
             (SELECT affected_components FROM public_incident_updates
               WHERE public_incident_id = p.id ORDER BY id DESC LIMIT 1) AS previous,
             (SELECT coalesce(jsonb_object_agg(component, levels), '{}') FROM (
                SELECT component, array_agg(component_status) AS levels
                FROM public_incident_links WHERE public_incident_id = p.id AND left_at IS NULL
                GROUP BY component) AS open_links) AS levels
           FROM public_incidents AS p WHERE p.id = $1""",
        public_incident_id,
    )
    if row is None:
        raise NotOpen(public_incident_id)
    before = {a["component"]: ComponentLevel(a["new_status"]) for a in row["previous"] or []}
    now: Mapping[str, list[str]] = row["levels"]
    return tuple(
        AffectedComponent(
            component,
            before.get(component, ComponentLevel.OPERATIONAL),
            ComponentLevel.OPERATIONAL
            if status.is_final
            else worst([ComponentLevel(level) for level in now.get(component, [])]),
        )
        for component in row["components"]
    )


async def _load(connection: Connection, public_incident_id: int) -> PublicIncident:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM public_incidents WHERE id = $1", public_incident_id
    )
    return (await _with_updates(connection, rows))[0]


async def _with_updates(
    connection: Connection, rows: Sequence[asyncpg.Record]
) -> list[PublicIncident]:
    updates = await connection.fetch(
        """SELECT public_incident_id, public_id, status, body, created_at, display_at,
             next_update_at, affected_components
           FROM public_incident_updates WHERE public_incident_id = ANY($1::bigint[])
           ORDER BY id DESC""",
        [row["id"] for row in rows],
    )
    by_incident: dict[int, list[PublicUpdate]] = {}
    for update in updates:
        by_incident.setdefault(update["public_incident_id"], []).append(_update(update))
    return [_incident(row, by_incident.get(row["id"], [])) for row in rows]


def _update(row: asyncpg.Record) -> PublicUpdate:
    return PublicUpdate(
        public_id=row["public_id"],
        status=IncidentStatus(row["status"]),
        body=row["body"],
        created_at=row["created_at"],
        display_at=row["display_at"],
        next_update_at=row["next_update_at"],
        affected_components=tuple(
            AffectedComponent(
                a["component"], ComponentLevel(a["old_status"]), ComponentLevel(a["new_status"])
            )
            for a in row["affected_components"]
        ),
    )


def _incident(row: asyncpg.Record, updates: list[PublicUpdate]) -> PublicIncident:
    return PublicIncident(
        id=row["id"],
        public_id=row["public_id"],
        component=row["component"],
        name=row["name"],
        status=IncidentStatus(row["status"]),
        impact=Impact(row["impact"]),
        components=tuple(row["components"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        monitoring_at=row["monitoring_at"],
        resolved_at=row["resolved_at"],
        postmortem_body=row["postmortem_body"],
        postmortem_published_at=row["postmortem_published_at"],
        updates=tuple(updates),
    )
