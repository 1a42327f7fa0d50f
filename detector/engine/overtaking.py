"""Which intake log records may be expanded ahead of older ones while a storm is paced.

Signals of one rule group must apply in arrival order, and a record's group is only known once
it is expanded; but its alert names bound the rules that can see it (``RuleSet.candidates``).
A record may go ahead when none of those rules has a backlog waiting (the storm) nor could see a
record left behind before it: every group it can reach then gets its signals in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from detector.ruleset.rules import RuleSet
from detector.store.intake_log import Head

Reach = Callable[[str], Iterable[str]]
"""The rules that can see an alert of this name."""


def reach_of(rules: RuleSet) -> Reach:
    """Which of ``rules`` can see an alert of a given name (``RuleSet.candidates``)."""
    return lambda alertname: [rule.name for rule in rules.candidates(alertname)]


def may_overtake(alertnames: Sequence[str] | None, storming: frozenset[str], reach: Reach) -> bool:
    """Whether alerts of these names (None: not known) may go ahead of a storm on the
    ``storming`` rules, unless a record before them holds them back: worth a quick pass."""
    return alertnames is None or not _reached(alertnames, reach) & storming


def overtaking(
    heads: Sequence[Head], storming: frozenset[str], reach: Reach, max_alerts: int
) -> list[int]:
    """The ids of the records, oldest first, that may be expanded now ahead of the others, up
    to about ``max_alerts`` alerts; ``storming`` are the rules with a backlog waiting. A record
    whose names are unknown holds back every record behind it."""
    held = set(storming)
    taken: list[int] = []
    alerts = 0
    for head in heads:
        if head.alertnames is None or alerts >= max_alerts:
            break
        reached = _reached(head.alertnames, reach)
        if reached & held:
            held |= reached
            continue
        taken.append(head.id)
        alerts += head.alerts
    return taken


def _reached(alertnames: Sequence[str], reach: Reach) -> set[str]:
    return {rule for name in alertnames for rule in reach(name)}
