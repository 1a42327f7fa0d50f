"""Signals of one (rule, group) through the rule's condition to the incident decision.

Shared by the signal stage (new signals) and the timer stage (a condition check falls due with no
new signals). Runs inside the caller's transaction, with the group's rows locked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from detector import condition_store, store
from detector.incidents import decide_signals
from detector.model import Decision, Signal
from detector.ruleset.conditions import evaluate
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.store import Connection

log = structlog.get_logger(__name__)


async def correlate(
    connection: Connection,
    rules: RuleSet,
    match: RuleMatch,
    signals: Sequence[Signal],
    now: datetime,
) -> Decision | None:
    """Evaluate the rule's condition and, for what it releases, decide and apply."""
    rule = match.rule
    current = await store.lock_group(connection, rule.name, match.group_key)
    released = tuple(signals)
    if rule.has_condition:
        stored = await condition_store.lock(connection, rule.name, match.group_key)
        seen = None
        if rule.heartbeat is not None:
            watched = condition_store.fingerprints(stored.state)
            seen = await condition_store.last_seen(connection, watched)
        incident_open = current is not None and current.is_open
        result = evaluate(rule, stored.state, signals, now, incident_open, seen)
        await condition_store.save(
            connection, rule.name, match.group_key, match.group_labels, stored, result, now
        )
        log.debug("condition.evaluated", rule=rule.name, note=result.note)
        released = result.release
    if not released:
        return None
    decision = decide_signals(current, released, match, rules.policy_for(rule), now)
    await store.apply(connection, decision, now)
    return decision
