"""Human actions on an incident (acknowledge, resolve), each one locked transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from detector.domain.incidents import decide_ack, decide_resolve
from detector.domain.model import Decision, Incident
from detector.domain.muting import mute
from detector.engine import superseding
from detector.engine.notices import with_notices
from detector.ruleset.rules import RuleSet
from detector.store import incidents as store
from detector.store.connection import Pool


class IncidentNotFound(LookupError):
    """No incident has that id."""


async def acknowledge(
    pool: Pool,
    incident_id: int,
    by: str,
    via: str,
    rules: RuleSet,
    now: datetime,
    episode: int | None = None,
) -> Decision:
    """Acknowledge; a second ack is a no-op that says so (as is a link from an earlier
    ``episode``, see ``decide_ack``)."""
    return await _act(
        pool,
        incident_id,
        lambda i: decide_ack(i, by, via, rules.rules.get(i.rule), now, episode),
        rules,
        now,
    )


async def resolve(
    pool: Pool, incident_id: int, by: str, reason: str, rules: RuleSet, now: datetime
) -> Decision:
    """Resolve by hand; works for incidents whose rule was since removed."""
    return await _act(pool, incident_id, lambda i: decide_resolve(i, by, reason, now), rules, now)


async def _act(
    pool: Pool,
    incident_id: int,
    decide: Callable[[Incident], Decision],
    rules: RuleSet,
    now: datetime,
) -> Decision:
    async with pool.acquire() as connection, connection.transaction():
        incident = await store.lock_incident(connection, incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        muted = mute(decide(incident), rules, now, incident)
        settled = await superseding.settle(connection, rules, muted, incident, now)
        decision = settled.decision
        stored = await store.apply(connection, with_notices(decision, rules, now), now)
        await superseding.record(connection, settled, stored, now)
        return decision
