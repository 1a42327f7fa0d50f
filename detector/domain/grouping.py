"""Which incident of a rule group signals meet, and what they change there.

The engine (``engine/correlation.py``, inside one transaction) and ``stormwatch rules test``
(``ruletest/simulator.py``, in memory) both route with ``to_attached_incidents``, pick the group's
incident with ``current_incident`` and decide with ``decide_group``, so a rule test predicts
exactly what the service does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from detector.domain.incidents import decide_signals
from detector.domain.model import Decision, Incident, Signal
from detector.domain.muting import mute
from detector.ruleset.conditions import ConditionResult, State, evaluate
from detector.ruleset.rules import RuleMatch, RuleSet


class HoldingIncident(Protocol):
    """An open incident holding an alert: its rule and group (a stored holder, or the incident)."""

    @property
    def rule(self) -> str: ...

    @property
    def group_key(self) -> str: ...

    @property
    def group_labels(self) -> Mapping[str, str]: ...


def to_attached_incidents(
    matches: list[RuleMatch], holders: Sequence[HoldingIncident], rules: RuleSet
) -> list[RuleMatch]:
    """An alert an open incident holds goes to that incident, whatever the rules say now.

    Otherwise a rule edited after the incident opened (narrower matchers, another group_by)
    would send the alert's resolution nowhere, or to another group, and leave the incident open
    for good. Holders whose rule is gone are left out (``live_rules`` excludes them anyway).
    """
    held = {h.rule: h for h in holders if h.rule in rules.rules}
    if not held:
        return matches
    others = [match for match in matches if match.rule.name not in held]
    return others + [
        RuleMatch(rules.rules[h.rule], h.group_key, h.group_labels) for h in held.values()
    ]


def current_incident(candidates: Iterable[Incident]) -> Incident | None:
    """The incident a group's next signals meet, among all the group has had.

    The open one (the store allows one per group), else the most recently resolved, so a
    return within ``reopen_within`` reopens it; a resolved incident without a resolution time
    counts as the most recent, and the higher id breaks a tie. ``store.incidents.lock_group``
    orders its rows by the same rule in SQL.
    """
    return max(candidates, key=_recency, default=None)


def _recency(incident: Incident) -> tuple[bool, bool, datetime | None, int]:
    # Tuples compare element by element, so resolved_at is compared only when both are set.
    resolved_at = incident.resolved_at
    return (incident.is_open, resolved_at is None, resolved_at, incident.id or 0)


@dataclass(frozen=True, slots=True)
class GroupChange:
    """The condition's new state (None for rules without one) and the incident decision (None
    while the condition holds every signal back)."""

    condition: ConditionResult | None
    decision: Decision | None


def decide_group(
    rules: RuleSet,
    match: RuleMatch,
    current: Incident | None,
    state: State,
    signals: Sequence[Signal],
    now: datetime,
    last_seen: datetime | None,
) -> GroupChange:
    """Decide what a group's new signals (or a due condition check, with none) change.

    ``current`` is the group's ``current_incident``, ``state`` its stored condition state and
    ``last_seen`` when a watched heartbeat last arrived firing.
    """
    rule = match.rule
    condition = None
    released = tuple(signals)
    if rule.has_condition:
        incident_open = current is not None and current.is_open
        condition = evaluate(rule, state, signals, now, incident_open, last_seen)
        released = condition.release
    if not released:
        return GroupChange(condition, None)
    return GroupChange(condition, decide_released(rules, match, current, released, now))


def decide_released(
    rules: RuleSet,
    match: RuleMatch,
    current: Incident | None,
    released: Sequence[Signal],
    now: datetime,
) -> Decision:
    """What the signals a group's condition released (or all, without one) change, muted by
    any window covering the incident. ``current`` need only hold the alerts of ``released``
    and, if there is one, another still firing (the engine loads no more)."""
    decision = decide_signals(current, released, match, rules.policy_for(match.rule), now)
    return mute(decision, rules, now, current)
