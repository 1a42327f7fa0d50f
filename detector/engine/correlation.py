"""Signals of one (rule, group) through the rule's condition to the incident decision.

``plan`` is the pure core, shared by the engine and by ``stormwatch rules test``; ``correlate``
loads and saves around it inside the caller's transaction (the signal stage for new signals, the
timer stage when a condition check falls due with no new signals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from detector.domain.incidents import decide_signals
from detector.domain.model import Decision, Incident, Signal
from detector.domain.muting import mute
from detector.ruleset.conditions import ConditionResult, State, evaluate
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.store import conditions as condition_store
from detector.store import incidents as store
from detector.store.connection import Connection

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """The condition's new state (None for rules without one) and the incident decision."""

    condition: ConditionResult | None
    decision: Decision | None


def plan(
    rules: RuleSet,
    match: RuleMatch,
    current: Incident | None,
    state: State,
    signals: Sequence[Signal],
    now: datetime,
    last_seen: datetime | None,
) -> GroupPlan:
    """Decide what a group's new signals (or a due condition check) change."""
    rule = match.rule
    condition = None
    released = tuple(signals)
    if rule.has_condition:
        incident_open = current is not None and current.is_open
        condition = evaluate(rule, state, signals, now, incident_open, last_seen)
        released = condition.release
    if not released:
        return GroupPlan(condition, None)
    decision = decide_signals(current, released, match, rules.policy_for(rule), now)
    return GroupPlan(condition, mute(decision, rules, now, current))


async def correlate(
    connection: Connection,
    rules: RuleSet,
    match: RuleMatch,
    signals: Sequence[Signal],
    now: datetime,
) -> Decision | None:
    """Lock and load the group, plan, save the condition state and apply the decision."""
    current = await store.lock_group(connection, match.rule.name, match.group_key)
    return await correlate_locked(connection, rules, match, current, signals, now)


async def correlate_locked(
    connection: Connection,
    rules: RuleSet,
    match: RuleMatch,
    current: Incident | None,
    signals: Sequence[Signal],
    now: datetime,
) -> Decision | None:
    """``correlate`` for a caller that holds the group's lock already (``current`` is what
    ``store.lock_group`` gave it)."""
    rule = match.rule
    stored = condition_store.StoredCondition()
    seen = None
    if rule.has_condition:
        stored = await condition_store.lock(connection, rule.name, match.group_key)
        if rule.heartbeat is not None:
            watched = condition_store.fingerprints(stored.state)
            seen = await condition_store.last_seen(connection, watched)
    result = plan(rules, match, current, stored.state, signals, now, seen)
    if result.condition is not None:
        await condition_store.save(
            connection,
            rule.name,
            match.group_key,
            match.group_labels,
            stored,
            result.condition,
            now,
        )
        log.debug("condition.evaluated", rule=rule.name, note=result.condition.note)
    if result.decision is not None:
        await store.apply(connection, result.decision, now)
    return result.decision
