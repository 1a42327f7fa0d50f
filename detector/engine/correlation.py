"""Signals of one (rule, group) through the rule's condition to the incident decision.

``correlate`` loads the group's incident and condition state, decides with the pure
``domain.grouping.decide_group`` (which ``stormwatch rules test`` drives too) and saves the
result, inside the caller's transaction (the signal stage for new signals, the timer stage when
a condition check falls due with no new signals).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from detector.domain.grouping import decide_group
from detector.domain.model import Decision, Incident, Signal
from detector.domain.related import DEFAULT_WINDOW
from detector.engine.impact import with_impact
from detector.engine.notices import with_notices
from detector.engine.related import link_opened
from detector.probes.alert import with_evidence
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.store import conditions as condition_store
from detector.store import incidents as store
from detector.store.connection import Connection

log = structlog.get_logger(__name__)


async def correlate(
    connection: Connection,
    rules: RuleSet,
    match: RuleMatch,
    signals: Sequence[Signal],
    now: datetime,
    related_window: timedelta = DEFAULT_WINDOW,
) -> Decision | None:
    """Lock and load the group, decide, save the condition state and apply the decision; a new
    incident is linked to those of its component opened within ``related_window``."""
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
    result = decide_group(rules, match, current, stored.state, signals, now, seen)
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
    decision = result.decision
    if decision is not None:
        decision = with_evidence(decision, signals, now)
        applied = with_impact(with_notices(decision, rules, now), rules, now)
        incident_id = await store.apply(connection, applied, now)
        if decision.opened and incident_id is not None and decision.incident is not None:
            await link_opened(connection, incident_id, decision.incident, related_window, now)
    return decision
