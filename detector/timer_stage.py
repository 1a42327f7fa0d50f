"""Engine stage 2: fire due timers (escalations, silence checks), each exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from detector import store, timers
from detector.incidents import decide_timer
from detector.model import Decision, Timer
from detector.ruleset.rules import RuleSet

LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class FiredTimer:
    """A timer that fired, how late it was, and what was decided."""

    timer: Timer
    lag: timedelta
    decision: Decision


async def fire_due(
    pool: asyncpg.Pool, rules: RuleSet, owner: str, now: datetime, limit: int = 100
) -> list[FiredTimer]:
    """Claim due timers and apply each one's decision in its own transaction."""
    async with pool.acquire() as connection:
        claimed = await timers.claim_due(connection, owner, now, LEASE, limit)
    fired = []
    for timer in claimed:
        async with pool.acquire() as connection, connection.transaction():
            incident = await store.lock_incident(connection, timer.incident_id)
            if incident is None:
                continue
            rule = rules.rules.get(incident.rule)
            last_seen = (
                await store.last_seen(connection, timer.incident_id) or incident.last_signal_at
            )
            decision = decide_timer(incident, timer, rule, last_seen, now)
            if not await timers.mark_fired(connection, timer.id, owner, decision.reason, now):
                continue
            await store.apply(connection, decision, now)
        fired.append(FiredTimer(timer, now - timer.due_at, decision))
    return fired
