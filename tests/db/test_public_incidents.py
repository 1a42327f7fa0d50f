"""Public incidents on real PostgreSQL: one open per component, joining, leaving, updates with
the component statuses they announced, postmortems, hand-set component statuses, and the
notification every write sends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from detector.store import component_status, public_incidents, wakeup
from detector.store.public_incidents import FirstNotice, NotOpen
from responders.statuspage.model import (
    AffectedComponent,
    ComponentLevel,
    Impact,
    IncidentStatus,
)

T0 = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
NOTICE = FirstNotice(
    "Card payments failing", "Some card payments fail.", T0 + timedelta(minutes=30)
)
L = ComponentLevel


async def internal_incident(connection: asyncpg.Connection, rule: str) -> int:
    """An open internal incident row to link (the engine's columns, minimal values)."""
    identifier: int = await connection.fetchval(
        """INSERT INTO incidents (rule, group_key, group_labels, state, severity, title, summary,
             component, opened_at, last_signal_at, updated_at)
           VALUES ($1, '{}', '{}', 'triggered', 'critical', 't', '', 'payments', $2, $2, $2)
           RETURNING id""",
        rule,
        T0,
    )
    return identifier


async def test_first_incident_opens_later_ones_join_and_the_last_to_leave_resolves(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as connection, connection.transaction():
        first = await internal_incident(connection, "a")
        second = await internal_incident(connection, "b")
        opened = await public_incidents.open_or_join(
            connection, first, "payments", L.DEGRADED_PERFORMANCE, NOTICE, T0
        )
        joined = await public_incidents.open_or_join(
            connection, second, "payments", L.MAJOR_OUTAGE, NOTICE, T0 + timedelta(minutes=1)
        )
        again = await public_incidents.open_or_join(
            connection, second, "payments", L.MAJOR_OUTAGE, NOTICE, T0 + timedelta(minutes=2)
        )
        levels = await public_incidents.open_levels(connection)
        left = await public_incidents.leave(connection, first, T0 + timedelta(minutes=5))
        levels_after = await public_incidents.open_levels(connection)
        last = await public_incidents.leave(connection, second, T0 + timedelta(minutes=6))
    assert opened.opened
    assert not joined.opened
    assert not again.opened
    incident = opened.incident
    assert joined.incident.public_id == incident.public_id == again.incident.public_id
    assert len(incident.public_id) == 12
    assert str(first) != incident.public_id
    assert incident.status is IncidentStatus.INVESTIGATING
    assert incident.impact is Impact.MINOR
    assert joined.incident.impact is Impact.CRITICAL  # a worse incident raised it
    assert len(joined.incident.updates) == 1  # joining published nothing
    (update,) = incident.updates
    assert (update.status, update.body, update.next_update_at) == (
        IncidentStatus.INVESTIGATING,
        NOTICE.body,
        NOTICE.next_update_at,
    )
    assert update.affected_components == (
        AffectedComponent("payments", L.OPERATIONAL, L.DEGRADED_PERFORMANCE),
    )
    assert levels == {"payments": L.MAJOR_OUTAGE}
    assert left is not None
    assert left.remaining == 1
    assert levels_after == {"payments": L.MAJOR_OUTAGE}
    assert last is not None
    assert last.remaining == 0


async def test_updates_move_the_lifecycle_and_record_component_statuses(pool: asyncpg.Pool) -> None:
    at = T0 + timedelta(minutes=20)
    async with pool.acquire() as connection, connection.transaction():
        incident_id = await internal_incident(connection, "a")
        public = (
            await public_incidents.open_or_join(
                connection, incident_id, "payments", L.PARTIAL_OUTAGE, NOTICE, T0
            )
        ).incident
        with pytest.raises(NotOpen):
            await public_incidents.publish_postmortem(connection, public.id, "too early", at)
        await public_incidents.add_update(
            connection, public.id, IncidentStatus.MONITORING, "Fixed, watching.", at, at
        )
        resolved = await public_incidents.add_update(
            connection, public.id, IncidentStatus.RESOLVED, "All good.", at, at + timedelta(1)
        )
        with pytest.raises(NotOpen):
            await public_incidents.add_update(
                connection, public.id, IncidentStatus.IDENTIFIED, "late", at, at
            )
        after = await public_incidents.publish_postmortem(
            connection, public.id, "What happened.", at + timedelta(2)
        )
        levels = await public_incidents.open_levels(connection)
        recent = await public_incidents.recent(connection, T0 - timedelta(days=90))
        by_id = await public_incidents.by_public_id(connection, public.public_id)
        still_open = await public_incidents.open_for(connection, "payments")
    assert resolved.next_update_at is None
    assert resolved.affected_components == (
        AffectedComponent("payments", L.PARTIAL_OUTAGE, L.OPERATIONAL),
    )
    assert after.status is IncidentStatus.POSTMORTEM
    assert after.monitoring_at == at
    assert after.resolved_at == at + timedelta(1)
    assert after.postmortem_body == "What happened."
    assert [u.status for u in after.updates] == [
        IncidentStatus.RESOLVED,
        IncidentStatus.MONITORING,
        IncidentStatus.INVESTIGATING,
    ]
    assert levels == {}
    assert still_open is None
    assert recent == [after]
    assert by_id == after


async def test_a_resolved_component_opens_a_new_public_incident(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection, connection.transaction():
        first = await internal_incident(connection, "a")
        public = await public_incidents.open_or_join(
            connection, first, "payments", L.MAJOR_OUTAGE, NOTICE, T0
        )
        await public_incidents.add_update(
            connection, public.incident.id, IncidentStatus.RESOLVED, "ok", None, T0
        )
        await connection.execute("UPDATE incidents SET state = 'resolved' WHERE id = $1", first)
        second = await internal_incident(connection, "a")
        again = await public_incidents.open_or_join(
            connection, second, "payments", L.MAJOR_OUTAGE, NOTICE, T0 + timedelta(hours=1)
        )
    assert again.opened
    assert again.incident.public_id != public.incident.public_id


async def test_component_statuses_set_by_hand(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await component_status.set_status(
            connection, "checkout", L.MAJOR_OUTAGE, "alice", "payment provider down", T0
        )
        replaced = await component_status.set_status(
            connection, "checkout", L.DEGRADED_PERFORMANCE, "bob", "", T0 + timedelta(1)
        )
        both = await component_status.overrides(connection)
        cleared = await component_status.clear(connection, "checkout")
        cleared_again = await component_status.clear(connection, "checkout")
        none = await component_status.overrides(connection)
    assert both == {"checkout": replaced}
    assert (cleared, cleared_again, none) == (True, False, {})


async def test_every_write_notifies_the_status_page_at_commit(
    pool: asyncpg.Pool, database_url: str
) -> None:
    woken = asyncio.Event()
    listener = asyncio.create_task(
        wakeup.wake_on(database_url, wakeup.STATUSPAGE_CHANNEL, woken.set)
    )
    try:
        await asyncio.sleep(0.3)
        async with pool.acquire() as connection, connection.transaction():
            await component_status.set_status(connection, "checkout", L.MAJOR_OUTAGE, "a", "", T0)
            await asyncio.sleep(0.2)
            assert not woken.is_set()  # nothing before the commit
        await asyncio.wait_for(woken.wait(), timeout=2)
    finally:
        listener.cancel()
