"""Human actions on an incident (acknowledge, resolve), each one locked transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from detector import store
from detector.incidents import decide_ack, decide_resolve
from detector.model import Decision
from detector.ruleset.rules import RuleSet


class IncidentNotFound(LookupError):
    """No incident has that id."""


async def acknowledge(
    pool: asyncpg.Pool, incident_id: int, by: str, via: str, rules: RuleSet, now: datetime
) -> Decision:
    """Acknowledge; a second ack is a no-op that says so."""
    async with pool.acquire() as connection, connection.transaction():
        incident = await store.lock_incident(connection, incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        decision = decide_ack(incident, by, via, rules.rules.get(incident.rule), now)
        await store.apply(connection, decision, now)
        return decision


async def resolve(
    pool: asyncpg.Pool, incident_id: int, by: str, reason: str, now: datetime
) -> Decision:
    """Resolve by hand; works for incidents whose rule was since removed."""
    async with pool.acquire() as connection, connection.transaction():
        incident = await store.lock_incident(connection, incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        decision = decide_resolve(incident, by, reason, now)
        await store.apply(connection, decision, now)
        return decision
