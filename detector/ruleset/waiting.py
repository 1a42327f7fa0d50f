"""What a rule condition keeps waiting in one group, kept so each signal costs the same however
many alerts wait.

The waiting alerts of a group (``for``, ``absent`` and ``all_of`` keep firing occurrences,
``threshold`` keeps the arrivals still in its window) are *members*, one stored row each. What a
condition decides on is a small ``Tally`` beside them: how many wait, how many cover each
``all_of`` selector, how many carry each distinct ``threshold`` value. One evaluation reads only
the members it can touch (``Need``: those its batch names, those leaving the window, the earliest
few) and reports what changed, so a batch of k signals costs O(k log k) whatever the group holds.

Bound: a group keeps at most ``WAITING_LIMIT`` members; past it, the earliest arrival leaves
(``Dropped.OVER_LIMIT``). Resolved occurrences leave at once, threshold arrivals when they leave
the window (``Dropped.LEFT_WINDOW``), and ``for``/``absent`` members are all released by the time
the earliest has waited its duration, so only ``all_of`` groups and distinct-value thresholds
ever reach the limit.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from detector.domain.model import AlertStatus, Signal, Source
from detector.ruleset.matchers import matches_all
from detector.ruleset.schema import RuleSpec

WAITING_LIMIT = 50_000


class Part(StrEnum):
    """Which kind of members a condition keeps (the name of its part of the state)."""

    PENDING = "pending"  # firing occurrences: for, absent, all_of
    EVENTS = "events"  # arrivals within a window: threshold


class Dropped(StrEnum):
    """Why a member left without being released."""

    LEFT_WINDOW = "left_window"
    OVER_LIMIT = "over_limit"


@dataclass(frozen=True, slots=True)
class Member:
    """One waiting alert occurrence: since when (``at``), and its threshold value if counted."""

    key: str
    at: datetime
    signal: Signal
    value: str = ""


def occurrence_key(signal: Signal) -> str:
    """A member's key: the alert occurrence, (fingerprint, startsAt)."""
    return f"{signal.fingerprint}@{signal.starts_at.isoformat()}"


def part_of(rule: RuleSpec) -> Part | None:
    """The members ``rule``'s condition keeps, if any."""
    if rule.threshold is not None:
        return Part.EVENTS
    if rule.for_ is not None or rule.absent is not None or rule.all_of is not None:
        return Part.PENDING
    return None


def basis(rule: RuleSpec) -> str:
    """What a tally's per-selector and per-value counts were counted against: when a rules
    reload changes it, the counts are rebuilt from the members."""
    spec: Any = rule.all_of if rule.all_of is not None else ()
    if rule.threshold is not None:
        spec = rule.threshold.distinct
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Tally:
    """What is known of all of a group's members without reading them."""

    part: Part
    basis: str
    count: int = 0
    covered: tuple[int, ...] = ()  # all_of: members matching each selector
    values: Mapping[str, int] = field(default_factory=dict)  # distinct threshold values

    def to_json(self) -> dict[str, Any]:
        """The tally as stored (JSON)."""
        data: dict[str, Any] = {"part": self.part.value, "basis": self.basis, "count": self.count}
        if self.covered:
            data["covered"] = list(self.covered)
        if self.values:
            data["values"] = dict(self.values)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        """Read a stored tally back."""
        return cls(
            Part(data["part"]),
            data.get("basis", ""),
            data["count"],
            tuple(data.get("covered", ())),
            dict(data.get("values", {})),
        )


@dataclass(frozen=True, slots=True)
class Need:
    """The members one evaluation must be given (any more do no harm): those with one of
    ``keys``, the ``earliest`` few by arrival, those that arrived at or before ``until``, or
    all of them (``everything``: the tally must be rebuilt)."""

    keys: frozenset[str] = frozenset()
    earliest: int = 0
    until: datetime | None = None
    everything: bool = False

    def select(self, members: Sequence[Member]) -> tuple[Member, ...]:
        """What a store loads for this need, from all ``members`` in arrival order."""
        if self.everything:
            return tuple(members)
        first = {
            m.key for _, _, m in heapq.nsmallest(self.earliest, _ranked(members))
        }  # by (at, rank), as the store orders them
        return tuple(
            m
            for m in members
            if m.key in self.keys
            or m.key in first
            or (self.until is not None and m.at <= self.until)
        )


def _ranked(members: Sequence[Member]) -> Iterable[tuple[datetime, int, Member]]:
    return ((m.at, rank, m) for rank, m in enumerate(members))


@dataclass(frozen=True, slots=True)
class Change:
    """How a group's members changed: with ``cleared`` every stored member left (and
    ``removed`` still names those that left before); then ``added`` joined, in arrival order."""

    added: tuple[Member, ...] = ()
    removed: frozenset[str] = frozenset()
    cleared: bool = False
    dropped: Mapping[Dropped, int] = field(default_factory=dict)


class Ledger:
    """A group's members during one evaluation: those loaded, what the batch adds and removes,
    and the tally, kept in step. Built fresh per evaluation, so its inputs stay untouched."""

    def __init__(
        self, rule: RuleSpec, tally: Tally | None, members: Sequence[Member], limit: int
    ) -> None:
        part, self._basis = part_of(rule) or Part.PENDING, basis(rule)
        self._selectors = rule.all_of or ()
        self._distinct = rule.threshold is not None and rule.threshold.distinct is not None
        self._limit = limit
        self.cleared = tally is not None and tally.part is not part  # another condition's
        self.part = part
        self._stored = {} if self.cleared else {m.key: m for m in members}
        self._heap = [(m.at, rank, m.key) for rank, m in enumerate(self._stored.values())]
        heapq.heapify(self._heap)
        self._ranks = {key: rank for _, rank, key in self._heap}
        self._next_rank = len(self._heap)
        self.added: dict[str, Member] = {}
        self.removed: set[str] = set()
        self.dropped: Counter[Dropped] = Counter()
        if tally is None or self.cleared or tally.basis != self._basis:
            self._recount(self._stored.values())  # all members were loaded (``needs``)
        else:
            self.count, self.covered = tally.count, list(tally.covered)
            self.values = dict(tally.values)
            if len(self.covered) != len(self._selectors):
                self.covered = [0] * len(self._selectors)

    def _recount(self, members: Iterable[Member]) -> None:
        self.count, self.covered, self.values = 0, [0] * len(self._selectors), {}
        for member in members:
            self._tally(member, 1)

    def get(self, key: str) -> Member | None:
        """The live member with ``key``, if it is one."""
        if key in self.added:
            return self.added[key]
        if key in self.removed or self.cleared:
            return None
        return self._stored.get(key)

    def add(self, member: Member) -> None:
        """A new member; the earliest leaves first if the group is full."""
        if self.count >= self._limit and self.remove_earliest() is not None:
            self.dropped[Dropped.OVER_LIMIT] += 1
        rank, self._next_rank = self._next_rank, self._next_rank + 1
        self.added[member.key] = member
        self._ranks[member.key] = rank
        heapq.heappush(self._heap, (member.at, rank, member.key))
        self._tally(member, 1)

    def remove(self, key: str) -> Member | None:
        """Take a live member out (resolved, or leaving)."""
        member = self.get(key)
        if member is None:
            return None
        if self.added.pop(key, None) is None:
            self.removed.add(key)
        del self._ranks[key]
        self._tally(member, -1)
        return member

    def earliest(self) -> Member | None:
        """The live member that arrived first."""
        while self._heap:
            _, rank, key = self._heap[0]
            if self._ranks.get(key) == rank:
                return self.get(key)
            heapq.heappop(self._heap)
        return None

    def remove_earliest(self) -> Member | None:
        """Take out the member that arrived first."""
        first = self.earliest()
        return None if first is None else self.remove(first.key)

    def prune(self, until: datetime) -> None:
        """Drop the members that arrived at or before ``until`` (they left the window)."""
        while (first := self.earliest()) is not None and first.at <= until:
            self.remove(first.key)
            self.dropped[Dropped.LEFT_WINDOW] += 1

    def clear(self) -> None:
        """Every member leaves (released, or no longer needed)."""
        self.cleared = True
        self.added.clear()
        self.removed.clear()
        self._ranks.clear()
        self._heap.clear()
        self._recount(())

    def all_covered(self) -> bool:
        """Whether every all_of selector has a live member matching it."""
        return all(self.covered)

    def distinct_count(self) -> int:
        """How many distinct threshold values the live members carry."""
        return len(self.values)

    def tally(self) -> Tally | None:
        """The tally to store (None when nothing waits)."""
        if not self.count:
            return None
        return Tally(self.part, self._basis, self.count, tuple(self.covered), self.values)

    def change(self) -> Change:
        """What changed since the ledger was built."""
        return Change(
            tuple(self.added.values()), frozenset(self.removed), self.cleared, dict(self.dropped)
        )

    def _tally(self, member: Member, sign: int) -> None:
        self.count += sign
        for index, selector in enumerate(self._selectors):
            if matches_all(selector, member.signal.labels):
                self.covered[index] += sign
        if self._distinct:
            left = self.values.get(member.value, 0) + sign
            if left:
                self.values[member.value] = left
            else:
                self.values.pop(member.value, None)


def track_firing(ledger: Ledger, signals: Iterable[Signal]) -> None:
    """Keep firing occurrences (with when they first arrived); drop those that resolved."""
    for signal in signals:
        key = occurrence_key(signal)
        if signal.status is AlertStatus.RESOLVED:
            ledger.remove(key)
        elif ledger.get(key) is None:
            ledger.add(Member(key, signal.received_at, signal))


def dump_signal(signal: Signal) -> dict[str, Any]:
    """A member's alert as stored (JSON)."""
    return {
        "source": signal.source.value,
        "name": signal.name,
        "fingerprint": signal.fingerprint,
        "status": signal.status.value,
        "starts_at": signal.starts_at.isoformat(),
        "ends_at": signal.ends_at.isoformat() if signal.ends_at else None,
        "labels": dict(signal.labels),
        "annotations": dict(signal.annotations),
        "received_at": signal.received_at.isoformat(),
    }


def load_signal(data: Mapping[str, Any]) -> Signal:
    """A stored member's alert."""
    return Signal(
        source=Source(data["source"]),
        name=data["name"],
        fingerprint=data["fingerprint"],
        status=AlertStatus(data["status"]),
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]) if data["ends_at"] else None,
        labels=data["labels"],
        annotations=data["annotations"],
        received_at=datetime.fromisoformat(data["received_at"]),
    )
