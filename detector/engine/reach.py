"""Who each step of an incident's policy reaches now: the I/O half of paging people.

The schedules come from the rule files; the overrides stored through the API are read inside
the firing timer's transaction, so the decision and what it was based on commit together. The
pure resolver (``responders.oncall.targets``) then says who each step reaches.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from detector.domain.escalation import Reach, StepTargets
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
