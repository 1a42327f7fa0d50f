"""Engine stage 2: fire due timers (escalations, silence checks, condition checks), each once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from detector.domain.incidents import decide_timer
from detector.domain.model import Decision, Timer
from detector.domain.muting import mute
from detector.domain.reasons import DecisionReason
from detector.domain.related import DEFAULT_WINDOW
from detector.engine.correlation import correlate_locked
from detector.engine.notices import with_notices
from detector.engine.stage import CycleContext, record_decisions
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.service.metrics import Metrics
from detector.store import conditions as condition_store
from detector.store import incidents as store
from detector.store import timers
from detector.store.connection import Connection, Pool

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class FiredTimer:
    """A timer that fired, how late it was, and what was decided."""

    timer: Timer
    lag: timedelta
    decision: Decision


@dataclass(frozen=True, slots=True)
class TimerBatch:
    """The timers one pass fired, and how many failed (each is retried once its lease ends)."""

    fired: list[FiredTimer]
    failed: int = 0

    @property
    def busy(self) -> bool:
        """True when timers fired."""
        return bool(self.fired)

    def record(self, metrics: Metrics) -> None:
        """Count the timers fired (by kind and reason) and failed, how late they were, and the
        incidents they opened and resolved."""
        for fired in self.fired:
            metrics.timer_lag.observe(max(fired.lag.total_seconds(), 0.0))
            metrics.timers_fired.labels(fired.timer.kind, fired.decision.reason).inc()
        if self.failed:
            metrics.engine_errors.labels("timers").inc(self.failed)
        record_decisions(metrics, (fired.decision for fired in self.fired))


async def fire_due(
    pool: Pool,
    rules: RuleSet,
    owner: str,
    now: datetime,
    limit: int = 100,
    related_window: timedelta = DEFAULT_WINDOW,
) -> TimerBatch:
    """Claim due timers and apply each one's decision in its own transaction.

    A timer whose transaction fails (a deadlock, a bug) keeps its lease and is tried again when
    the lease runs out; the others claimed with it still fire now.
    """
    async with pool.acquire() as connection:
        claimed = await timers.claim_due(connection, owner, now, LEASE, limit)
    fired = []
    failed = 0
    for timer in claimed:
        try:
            decision = await _fire(pool, rules, timer, owner, now, related_window)
        except _LeaseLost:
            continue
        except Exception:
            failed += 1
            log.exception("timer.failed", timer=timer.id, kind=timer.kind, retry_in=str(LEASE))
            continue
        fired.append(FiredTimer(timer, now - timer.due_at, decision))
    return TimerBatch(fired, failed)


class _LeaseLost(Exception):
    """Another replica took the timer over; this transaction must not commit."""


async def _fire(
    pool: Pool, rules: RuleSet, timer: Timer, owner: str, now: datetime, related_window: timedelta
) -> Decision:
    async with pool.acquire() as connection, connection.transaction():
        if timer.incident_id is None:
            decision = await _check_condition(connection, rules, timer, now, related_window)
        else:
            decision = await _incident_timer(connection, rules, timer, timer.incident_id, now)
        if not await timers.mark_fired(connection, timer.id, owner, decision.reason, now):
            raise _LeaseLost
    return decision


async def _incident_timer(
    connection: Connection, rules: RuleSet, timer: Timer, incident_id: int, now: datetime
) -> Decision:
    incident = await store.lock_incident(connection, incident_id)
    if incident is None:
        return Decision(DecisionReason.INCIDENT_GONE)
    last_seen = await store.last_seen(connection, incident_id) or incident.last_signal_at
    decided = decide_timer(incident, timer, rules.rules.get(incident.rule), last_seen, now)
    decision = mute(decided, rules, now, incident)
    await store.apply(connection, with_notices(decision, rules, now), now)
    return decision


async def _check_condition(
    connection: Connection, rules: RuleSet, timer: Timer, now: datetime, related_window: timedelta
) -> Decision:
    if timer.rule is None or timer.group_key is None:
        return Decision(DecisionReason.RULE_REMOVED)
    rule = rules.rules.get(timer.rule)
    if rule is None:
        await condition_store.forget(connection, timer.rule, timer.group_key)
        return Decision(DecisionReason.RULE_REMOVED)
    # The group's incident first, then its condition: the order the signal stage locks them in
    # (``correlate``), so the two stages cannot deadlock over one group.
    current = await store.lock_group(connection, rule.name, timer.group_key)
    stored = await condition_store.lock(connection, rule.name, timer.group_key)
    if stored.check_at != timer.due_at:
        return Decision(DecisionReason.CHECK_SUPERSEDED)
    match = RuleMatch(rule, timer.group_key, stored.group_labels)
    if not rule.has_condition:
        # A rules reload took the condition away: what it kept waiting (and has not resolved
        # since) joins the incident now, instead of waiting for good.
        kept = await condition_store.kept_waiting(connection, rule.name, timer.group_key, stored)
        await condition_store.forget(connection, rule.name, timer.group_key)
        waiting = await condition_store.unresolved(connection, kept)
        applied = await correlate_locked(
            connection, rules, match, current, waiting, now, related_window
        )
        return applied.decision or Decision(DecisionReason.CONDITION_REMOVED)
    applied = await correlate_locked(connection, rules, match, current, (), now, related_window)
    return applied.decision or Decision(DecisionReason.CONDITION_PENDING)


class TimerStage:
    """The cycle's stage that fires due timers (:func:`fire_due`)."""

    name = "timers"

    def __init__(self, related_window: timedelta = DEFAULT_WINDOW) -> None:
        self._related_window = related_window

    async def run(self, context: CycleContext) -> TimerBatch:
        """Fire what is due now."""
        return await fire_due(
            context.pool,
            context.routes.rules,
            context.owner,
            context.now,
            related_window=self._related_window,
        )
