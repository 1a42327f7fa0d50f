"""Signals of one (rule, group) through the rule's condition to the incident decision.

``correlate`` locks the group's incident, runs the condition on the members it needs
(``ruleset.conditions``), saves what changed, then loads of the incident only the alerts the
released signals touch and decides with the pure ``domain.grouping.decide_released`` (which
``stormwatch rules test`` drives too), all inside the caller's transaction (the signal stage for
new signals, the timer stage when a condition check falls due with no new signals). Nothing here
reads every alert of a group: a batch costs what it carries, not what the group holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from detector.domain.grouping import decide_released
from detector.domain.model import Decision, Incident, Signal
from detector.domain.related import DEFAULT_WINDOW
from detector.engine import superseding
from detector.engine.impact import with_impact
from detector.engine.notices import with_notices
from detector.engine.reach import with_first_step
from detector.engine.related import link_opened
from detector.probes.alert import with_evidence
from detector.ruleset.conditions import decide, needed, released
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.ruleset.waiting import Dropped
from detector.store import conditions as condition_store
from detector.store import incidents as store
from detector.store.connection import Connection

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Correlated:
    """What applying a group's signals did: the incident decision (None while the condition
    keeps them waiting) and the waiting alerts its condition dropped, by reason."""

    decision: Decision | None = None
    dropped: Mapping[Dropped, int] = field(default_factory=dict)


async def correlate(
    connection: Connection,
    rules: RuleSet,
    match: RuleMatch,
    signals: Sequence[Signal],
    now: datetime,
    related_window: timedelta = DEFAULT_WINDOW,
) -> Correlated:
    """Lock the group's incident, then decide and save (``correlate_locked``); a new incident
    is linked to those of its component opened within ``related_window``."""
    current = await store.lock_group(connection, match.rule.name, match.group_key)
    return await correlate_locked(connection, rules, match, current, signals, now, related_window)


async def correlate_locked(
    connection: Connection,
    rules: RuleSet,
    match: RuleMatch,
    current: Incident | None,
    signals: Sequence[Signal],
    now: datetime,
    related_window: timedelta = DEFAULT_WINDOW,
) -> Correlated:
    """``correlate`` for a caller that holds the group's lock already (``current`` is what
    ``store.lock_group`` gave it)."""
    passing: tuple[Signal, ...] = tuple(signals)
    dropped: Mapping[Dropped, int] = {}
    if match.rule.has_condition:
        passing, dropped = await _through_condition(connection, match, current, signals, now)
    if not passing:
        return Correlated(None, dropped)
    if current is not None:
        current = await store.with_alerts(connection, current, [s.occurrence for s in passing])
    decision = with_evidence(decide_released(rules, match, current, passing, now), signals, now)
    settled = await superseding.settle(connection, rules, decision, current, now)
    decision = await with_first_step(connection, rules, settled.decision, now)
    applied = with_impact(with_notices(decision, rules, now), rules, now)
    incident_id = await store.apply(connection, applied, now)
    await superseding.record(connection, settled, incident_id, now)
    if decision.opened and incident_id is not None and decision.incident is not None:
        await link_opened(connection, incident_id, decision.incident, related_window, now)
    return Correlated(decision, dropped)


async def _through_condition(
    connection: Connection,
    match: RuleMatch,
    current: Incident | None,
    signals: Sequence[Signal],
    now: datetime,
) -> tuple[tuple[Signal, ...], Mapping[Dropped, int]]:
    """Run the rule's condition on the group's stored state: what it releases, and drops."""
    rule, key = match.rule, match.group_key
    stored = await condition_store.lock(connection, rule.name, key)
    seen = None
    if rule.heartbeat is not None:
        watched = condition_store.fingerprints(stored.state)
        seen = await condition_store.last_seen(connection, watched)
    incident_open = current is not None and current.is_open
    need = needed(rule, stored.state, signals, now, incident_open)
    members = await condition_store.members(connection, rule.name, key, need)
    outcome = decide(rule, stored.state, members, signals, now, incident_open, seen)
    taken = await condition_store.save(connection, match, stored, outcome, now)
    log.debug("condition.evaluated", rule=rule.name, note=outcome.note)
    if outcome.change.dropped:
        counts = {str(reason): count for reason, count in outcome.change.dropped.items()}
        log.info("condition.dropped", rule=rule.name, group_key=key, dropped=counts)
    return released(outcome, taken), outcome.change.dropped
