"""Which intake log records may be expanded ahead of older ones while a storm is paced.

Signals of one rule group must apply in arrival order, and a record's group is only known once
it is expanded; but its alert names bound the rules that can see it (``RuleSet.candidates``).
A record may go ahead when none of those rules has a backlog waiting (the storm) nor could see a
record left behind before it: every group it can reach then gets its signals in order.

A quick pass cannot start while a cycle holds the signal lock, and a storm's cycle spends most
of its time applying the storm's groups. Once such a record waits, the cycle puts off the groups
it has not applied yet that the storm reaches (``PutOff``): they keep their order in their
backlogs, and the pass comes sooner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from detector.domain.superseding import superseding_rules
from detector.engine.slices import GroupSlice
from detector.ruleset.rules import RuleSet
from detector.store.backlog import GroupKey
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


class PutOff:
    """Which groups a cycle hurried by a waiting quick pass leaves for a later one, taken in the
    cycle's order (superseding rules first). A group is put off when its signals' names reach a
    rule with a backlog (``storming``) or one put off before it, or when a rule put off before it
    supersedes its rule (its symptoms must not page ahead of the superseding incident). Every
    other group, another rule's new incident among them, still applies in this cycle."""

    def __init__(self, rules: RuleSet, storming: frozenset[str]) -> None:
        self._rules = rules
        self._reach = reach_of(rules)
        self._held = set(storming)
        self._put_off: set[str] = set()

    def wants(self, piece: GroupSlice) -> bool:
        """Whether ``piece`` waits for a later cycle (remembered for the pieces after it)."""
        rule = piece.key[0]
        reached = _reached([item.signal.name for item in piece.apply], self._reach)
        if not reached & self._held and not superseding_rules(self._rules, rule).keys() & (
            self._put_off
        ):
            return False
        self._held |= reached | {rule}
        self._put_off.add(rule)
        return True


def waiting(piece: GroupSlice) -> list[tuple[GroupKey, int]]:
    """What of a put-off ``piece`` goes to its backlog: every signal of it but those already
    there, which stay where they are."""
    there = {signal_id for _, signal_id in piece.done}
    fresh = [item.id for item in piece.apply if item.id not in there]
    return [(piece.key, signal_id) for signal_id in sorted([*fresh, *piece.carry])]


def _reached(alertnames: Sequence[str], reach: Reach) -> set[str]:
    return {rule for name in alertnames for rule in reach(name)}
