"""Engine stage 2: fire due timers (escalations, silence checks, condition checks), each once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from detector.domain.escalation import FIRST_PAGED, NOBODY_ON_CALL, Reach
from detector.domain.incidents import decide_timer
from detector.domain.model import Decision, Incident, Timer, TimerKind
from detector.domain.muting import mute
from detector.domain.reasons import DecisionReason
from detector.domain.related import DEFAULT_WINDOW
from detector.engine import superseding
from detector.engine.correlation import correlate_locked
from detector.engine.leases import TERM, LeaseKeeper, Renew
from detector.engine.notices import with_notices
from detector.engine.reach import reach_now
from detector.engine.stage import CycleContext, Lane, record_decisions
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.service.metrics import Metrics
from detector.store import conditions as condition_store
from detector.store import incidents as store
from detector.store import timers
from detector.store.connection import Connection, Pool
from detector.store.pooled import connection_failed, pooled

log = structlog.get_logger(__name__)
_PAGING = frozenset({TimerKind.ESCALATE, TimerKind.ACK_TIMEOUT})
_STEPS_PAGED = frozenset(
    {DecisionReason.PAGED, DecisionReason.ESCALATED, DecisionReason.ACK_TIMED_OUT}
)
BATCH = 100
RETRY_FAILED_AFTER = timedelta(seconds=60)
"""How long a timer whose transaction failed waits before it is tried again."""
LONGEST_BATCH = timedelta(seconds=60)
"""The longest one batch keeps its timers leased (renewed while it runs): a batch that hangs
lets another replica fire what it has not."""


@dataclass(frozen=True, slots=True)
class FiredTimer:
    """A timer that fired, how late it was, and what was decided."""

    timer: Timer
    lag: timedelta
    decision: Decision


@dataclass(frozen=True, slots=True)
class TimerBatch:
    """The timers one pass fired, and how many failed (each is tried again later)."""

    fired: list[FiredTimer]
    failed: int = 0
    next_due: datetime | None = None
    """When the earliest timer still waiting falls due, as read after this pass."""

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
        record_escalations(metrics, (fired.decision for fired in self.fired))


def record_escalations(metrics: Metrics, decisions: Iterable[Decision]) -> None:
    """Count the steps that paged (by step) and those that reached nobody."""
    for decision in decisions:
        nobody = sum(1 for entry in decision.timeline if entry.kind == NOBODY_ON_CALL)
        if nobody:
            metrics.escalation_nobody_on_call.inc(nobody)
            log.warning("escalation.nobody_on_call", steps=nobody, reason=decision.reason)
        incident = decision.incident
        paged = decision.reason in _STEPS_PAGED
        if not paged:  # a first step paged with the decision that opened the incident
            paged = any(entry.kind == FIRST_PAGED for entry in decision.timeline)
        if incident is not None and paged:
            metrics.escalations.labels(str(incident.escalation_step)).inc()


async def fire_due(
    context: CycleContext, related_window: timedelta = DEFAULT_WINDOW, limit: int = BATCH
) -> TimerBatch:
    """Claim due timers and apply each one's decision in its own transaction.

    The claim is a short lease, renewed while the batch is worked through. A timer whose
    transaction the database refuses (a deadlock, a bug) is held back for ``RETRY_FAILED_AFTER``
    while the others claimed with it still fire now. When the database goes away instead, the
    rest of the batch is given back (or its leases run out, if the database cannot be told),
    so whichever replica reaches the database next fires them.
    """
    pool, owner, now = context.pool, context.owner, context.now
    async with pooled(pool) as connection:  # its return cannot lose the claim
        claimed = await timers.claim_due(connection, owner, now, TERM, limit)
        next_due = await timers.next_due(connection, now)
    fired: list[FiredTimer] = []
    failed = 0
    keeper = LeaseKeeper(
        _renewer(pool, owner), (t.id for t in claimed), context.clock.now, now, LONGEST_BATCH
    )
    async with keeper:
        for position, timer in enumerate(claimed):
            try:
                decision = await _fire(
                    pool, context.routes.rules, timer, owner, now, related_window
                )
            except _LeaseLost:
                continue
            except Exception as err:
                failed += 1
                if connection_failed(err):
                    log.warning("timer.database_lost", timer=timer.id, error=type(err).__name__)
                    await _give_back(pool, owner, claimed[position:])
                    break
                log.exception(
                    "timer.failed",
                    timer=timer.id,
                    kind=timer.kind,
                    retry_in=str(RETRY_FAILED_AFTER),
                )
                await _hold_back(pool, owner, timer, context.clock.now() + RETRY_FAILED_AFTER)
                continue
            finally:
                keeper.let_go(timer.id)
            fired.append(FiredTimer(timer, now - timer.due_at, decision))
    return TimerBatch(fired, failed, next_due)


def _renewer(pool: Pool, owner: str) -> Renew:
    async def renew(ids: list[int], until: datetime) -> None:
        async with pooled(pool) as connection:
            await timers.renew_leases(connection, ids, owner, until)

    return renew


async def _give_back(pool: Pool, owner: str, unfired: list[Timer]) -> None:
    """Release the leases on ``unfired`` (best effort: else they run out within a few seconds)."""
    try:
        async with pooled(pool) as connection:
            await timers.release_leases(connection, [t.id for t in unfired], owner)
    except Exception as err:
        log.warning("timer.release_failed", timers=len(unfired), error=type(err).__name__)


async def _hold_back(pool: Pool, owner: str, timer: Timer, until: datetime) -> None:
    """Keep a failed timer leased until ``until``, so it is tried again then rather than in a
    tight loop (best effort: else its lease runs out sooner)."""
    try:
        async with pooled(pool) as connection:
            await timers.renew_leases(connection, [timer.id], owner, until)
    except Exception as err:
        log.warning("timer.hold_back_failed", timer=timer.id, error=type(err).__name__)


class _LeaseLost(Exception):
    """Another replica took the timer over; this transaction must not commit."""


async def _fire(
    pool: Pool, rules: RuleSet, timer: Timer, owner: str, now: datetime, related_window: timedelta
) -> Decision:
    async with pooled(pool) as connection, connection.transaction():
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
    reach = await _reach(connection, rules, incident, timer, now)
    decided = decide_timer(incident, timer, rules.rules.get(incident.rule), last_seen, now, reach)
    settled = await superseding.settle(
        connection, rules, mute(decided, rules, now, incident), incident, now
    )
    decision = settled.decision
    stored = await store.apply(connection, with_notices(decision, rules, now), now)
    await superseding.record(connection, settled, stored, now)
    return decision


async def _reach(
    connection: Connection, rules: RuleSet, incident: Incident, timer: Timer, now: datetime
) -> Reach | None:
    """Who the incident's steps reach now, for the timers that page (not a stale one)."""
    wanted = timer.kind in _PAGING and timer.epoch == incident.epoch and incident.is_open
    if not wanted or incident.policy is None:
        return None
    return await reach_now(connection, rules, incident.policy, now)


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
    lane = Lane.DETECT

    def __init__(self, related_window: timedelta = DEFAULT_WINDOW) -> None:
        self._related_window = related_window

    async def run(self, context: CycleContext) -> TimerBatch:
        """Fire what is due now."""
        return await fire_due(context, self._related_window)
