"""Which signals each rule group applies this cycle, and which wait for a later one.

A group applies at most ``size`` signals a cycle, the oldest first (signal ids are arrival
order); the rest wait in its backlog (``store.backlog``). A group whose backlog holds more than
one slice applies only signals older than the first one left there, so its alerts always apply
in arrival order, while every other group goes ahead in the same cycle: one storm cannot hold
up another rule's incident.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from detector.domain.grouping import to_attached_incidents
from detector.domain.model import Signal
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.store.backlog import GroupKey, Lane
from detector.store.signals import PendingSignal

Route = Callable[[Signal], list[RuleMatch]]


@dataclass
class GroupSlice:
    """One group's share of a cycle: ``apply`` now (arrival order), ``carry`` to its backlog,
    ``done`` leaves the backlog (applied now)."""

    match: RuleMatch
    apply: list[PendingSignal] = field(default_factory=list)
    carry: list[int] = field(default_factory=list)
    done: list[tuple[GroupKey, int]] = field(default_factory=list)

    @property
    def key(self) -> GroupKey:
        """(rule, group key)."""
        return (self.match.rule.name, self.match.group_key)


@dataclass
class _Group:
    match: RuleMatch
    candidates: dict[int, PendingSignal] = field(default_factory=dict)
    backlog: dict[int, GroupKey] = field(default_factory=dict)  # signal id → lane it came from


class Slicer:
    """Collects a cycle's signals by group (from backlogs, the queue and the intake log), then
    cuts each group's slice."""

    def __init__(self, rules: RuleSet, route: Route, size: int, lanes: Sequence[Lane]) -> None:
        self._rules = rules
        self._route = route
        self._size = size
        self._groups: dict[GroupKey, _Group] = {}
        self._next: dict[GroupKey, int] = {
            (lane.rule, lane.group_key): lane.next_id for lane in lanes if lane.next_id is not None
        }
        self.stale: list[tuple[GroupKey, int]] = []
        """Backlog entries whose rule no longer routes their signal there: they just leave."""
        for lane in lanes:
            self._add_lane(lane)

    def _add_lane(self, lane: Lane) -> None:
        for item in lane.signals:
            matches = self._matches(item)
            mine = [match for match in matches if match.rule.name == lane.rule]
            if not mine:
                self.stale.append(((lane.rule, lane.group_key), item.id))
            for match in mine:
                group = self._group(match)
                group.candidates[item.id] = item
                group.backlog[item.id] = (lane.rule, lane.group_key)

    def add(self, pending: Sequence[PendingSignal]) -> dict[int, bool]:
        """Route new signals (a retry only to the rules it failed in) to their groups; whether
        a rule matched each, by id (a retry always had one)."""
        matched: dict[int, bool] = {}
        for item in pending:
            matches = self._matches(item)
            matched[item.id] = bool(matches) or item.retry_rules is not None
            if item.retry_rules is not None:  # the other rules that route it have it already
                matches = [match for match in matches if match.rule.name in item.retry_rules]
            for match in matches:
                self._group(match).candidates[item.id] = item
        return matched

    def routes_nowhere(self, signal: Signal) -> bool:
        """Whether no rule routes ``signal`` (it is stored flagged, and done with)."""
        return not self._route(signal)

    @property
    def sliced(self) -> bool:
        """Whether some group has more than it may apply this cycle."""
        return any(
            key in self._next or len(group.candidates) > self._size
            for key, group in self._groups.items()
        )

    @property
    def backlogged(self) -> frozenset[str]:
        """The rules of the groups whose backlog holds more than this cycle takes of it."""
        return frozenset(rule for rule, _ in self._next)

    def slices(self) -> list[GroupSlice]:
        """Every group's slice, in the order the groups were first met."""
        return [self._cut(key, group) for key, group in self._groups.items()]

    def _cut(self, key: GroupKey, group: _Group) -> GroupSlice:
        boundary = self._next.get(key)
        ordered = sorted(group.candidates)
        eligible = [i for i in ordered if boundary is None or i < boundary]
        applied = eligible[: self._size]
        now = set(applied)
        return GroupSlice(
            group.match,
            apply=[group.candidates[i] for i in applied],
            carry=[i for i in ordered if i not in now and i not in group.backlog],
            done=[(group.backlog[i], i) for i in applied if i in group.backlog],
        )

    def _matches(self, item: PendingSignal) -> list[RuleMatch]:
        return to_attached_incidents(self._route(item.signal), item.holders, self._rules)

    def _group(self, match: RuleMatch) -> _Group:
        return self._groups.setdefault((match.rule.name, match.group_key), _Group(match))
