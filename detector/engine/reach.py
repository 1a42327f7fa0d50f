"""Who each step of an incident's policy reaches now: the I/O half of paging people.

The schedules come from the rule files; the overrides stored through the API are read inside
the firing timer's transaction, so the decision and what it was based on commit together. The
pure resolver (``responders.oncall.targets``) then says who each step reaches.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from detector.domain.escalation import Reach, StepTargets, first_step_due, page_first_step
from detector.domain.model import Decision
from detector.ruleset.rules import RuleSet
from detector.store import oncall_overrides
from detector.store.connection import Connection
from responders.escalation import EscalationPolicy
from responders.oncall.targets import notified_at

_INSTANT = timedelta(seconds=1)
"""The window of stored overrides read: those live at the instant a step fires."""


async def reach_now(
    connection: Connection, rules: RuleSet, policy: EscalationPolicy, now: datetime
) -> Reach:
    """Resolve every step of ``policy`` at ``now`` (one query for all its schedules'
    overrides), with the people the rule files know."""
    names = sorted({name for step in policy.steps for name in step.schedules})
    overrides = (
        await oncall_overrides.overlapping(connection, names, now, now + _INSTANT) if names else {}
    )
    steps = []
    for step in policy.steps:
        notified = notified_at(step, rules.schedules, now, overrides)
        steps.append(StepTargets(notified.people, notified.channels, notified.empty_schedules))
    return Reach(tuple(steps), frozenset(rules.people))


async def with_first_step(
    connection: Connection, rules: RuleSet, decision: Decision, now: datetime
) -> Decision:
    """``decision`` with its first step paged now, when it opens an episode whose first step
    names people or schedules: who is on call is resolved in the caller's transaction, so the
    page is queued with the decision rather than by a timer due at once in a later stage."""
    timer = first_step_due(decision, now)
    incident = decision.incident
    if timer is None or incident is None or incident.policy is None:
        return decision
    reach = await reach_now(connection, rules, incident.policy, now)
    return page_first_step(decision, timer, reach, now)
