"""Applying a decision writes four tables through their owners, as one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from detector.domain.model import (
    Decision,
    Incident,
    IncidentState,
    PageOrder,
    Severity,
    TimelineEntry,
    TimerKind,
    TimerSpec,
)
from detector.store import incidents
from responders.messages import MessageKind, PageEvent

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
TABLES = ("incidents", "timeline", "timers", "outbox")
COUNTS = """SELECT (SELECT count(*) FROM incidents) AS incidents,
                   (SELECT count(*) FROM timeline) AS timeline,
                   (SELECT count(*) FROM timers) AS timers,
                   (SELECT count(*) FROM outbox) AS outbox"""


def opened(page_channel: str) -> Decision:
    """A new incident with one timeline entry, one escalation timer and one page."""
    incident = Incident(
        rule="pool_saturated",
        group_key="eu1",
        group_labels={"cluster": "eu1"},
        state=IncidentState.TRIGGERED,
        severity=Severity.CRITICAL,
        title="Pool saturated",
        summary="PgBouncer pool saturated on eu1",
        component=None,
        policy=None,
        opened_at=T0,
        last_signal_at=T0,
    )
    return Decision(
        reason="opened",
        incident=incident,
        timeline=(TimelineEntry("incident.opened", T0),),
        timers=(TimerSpec(TimerKind.ESCALATE, T0 + timedelta(minutes=5)),),
        pages=(PageOrder(page_channel, PageEvent.TRIGGERED, 0),),
        opened=True,
    )


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    return dict(await pool.fetchrow(COUNTS))


class TestApply:
    async def test_a_decision_commits_its_incident_timeline_timers_and_pages(
        self, pool: asyncpg.Pool
    ) -> None:
        async with pool.acquire() as connection, connection.transaction():
            incident_id = await incidents.apply(connection, opened("pager"), T0)
        assert await counts(pool) == dict.fromkeys(TABLES, 1)
        page = await pool.fetchrow("SELECT kind, idempotency_key FROM outbox")
        assert page["kind"] == MessageKind.PAGE
        assert page["idempotency_key"] == f"{incident_id}:0:triggered:0:pager"

    async def test_a_page_that_cannot_be_stored_takes_the_whole_decision_with_it(
        self, pool: asyncpg.Pool
    ) -> None:
        with pytest.raises(asyncpg.PostgresError):  # PostgreSQL text cannot hold a NUL
            async with pool.acquire() as connection, connection.transaction():
                await incidents.apply(connection, opened("pa\x00ger"), T0)
        assert await counts(pool) == dict.fromkeys(TABLES, 0)
