"""An in-memory engine for rule tests, time stepped explicitly.

It decides with the engine's own pure functions: routing and the group's incident and condition
(``domain.grouping``), timers and human actions (``domain.incidents``), windows
(``domain.muting``), superseding rules (``domain.superseding``). What the engine keeps in
PostgreSQL lives in dictionaries here: stored signals (a replay only refreshes when it was last
seen), incidents, condition states (as JSON, as in their jsonb column), timers and the links
between superseding and superseded incidents.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson

from detector.domain.grouping import current_incident, decide_group, to_attached_incidents
from detector.domain.incidents import decide_ack, decide_resolve, decide_timer
from detector.domain.model import (
    AlertStatus,
    Decision,
    Incident,
    Occurrence,
    Signal,
    Source,
    Timer,
    TimerKind,
)
from detector.domain.muting import mute
from detector.domain.superseding import (
    SUPERSEDED_BY,
    Party,
    cover,
    covered,
    decision_order,
    hold,
    names_covered,
    opens,
    superseders,
    would_page,
)
from detector.intake.alertmanager import fingerprint_of
from detector.ruleset.conditions import ConditionResult, State
from detector.ruleset.rules import RuleMatch, RuleSet

ACTOR = "rule-test"
MAX_STEPS = 100_000

Input = Callable[["Simulation", datetime], None]
"""Something that happens at a moment: ``input(simulation, now)``."""


class NotSettled(RuntimeError):
    """Timers kept falling due: the simulation took ``MAX_STEPS`` steps without reaching its end."""


@dataclass(frozen=True, slots=True)
class SentPage:
    """A page the simulation delivered."""

    at: datetime
    channel: str
    event: str
    incident_id: int


@dataclass(frozen=True, slots=True)
class ConditionCheck:
    """One evaluation of a group's condition: on new ``signals``, or on none when its check fell
    due."""

    at: datetime
    rule: str
    group_key: str
    signals: tuple[Signal, ...]
    result: ConditionResult


@dataclass
class _Group:
    match: RuleMatch
    state: State = field(default_factory=dict)
    check_at: datetime | None = None


class Simulation:
    """Feed alerts and actions in time order; read ``incidents``, ``pages`` and ``checks`` after.

    ``state_as_json=False`` keeps condition states as the objects the condition returned instead
    of as stored JSON: the two must decide alike, or state would not survive a restart.
    """

    def __init__(self, rules: RuleSet, *, state_as_json: bool = True) -> None:
        self.rules = rules
        self.incidents: dict[int, Incident] = {}
        self.pages: list[SentPage] = []
        self.checks: list[ConditionCheck] = []
        self._state_as_json = state_as_json
        self._received: dict[tuple[str, datetime, AlertStatus], datetime] = {}
        self._firing_since: dict[str, datetime] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._timers: list[tuple[datetime, int, Timer]] = []
        self._sequence = itertools.count(1)
        self._supersedes: set[tuple[int, int]] = set()

    def play(self, inputs: Iterable[tuple[datetime, Input]], until: datetime) -> None:
        """Apply ``inputs`` in time order and fire every timer at its due time, up to ``until``.

        At one moment the inputs come first, then the timers due: the engine's cycle handles
        new signals before timers.
        """
        pending = sorted(inputs, key=lambda item: item[0])
        position = 0
        for _ in range(MAX_STEPS):
            next_input = pending[position][0] if position < len(pending) else None
            now = min(filter(None, (next_input, self.next_timer())), default=None)
            if now is None or now > until:
                return
            while position < len(pending) and pending[position][0] == now:
                pending[position][1](self, now)
                position += 1
            self.fire_due(now)
        raise NotSettled(f"did not settle after {MAX_STEPS} steps")

    def receive(
        self,
        labels: dict[str, str],
        annotations: dict[str, str],
        status: AlertStatus,
        now: datetime,
    ) -> None:
        """One alert delivered at ``now``; a firing alert keeps its start until it resolves."""
        fingerprint = fingerprint_of(labels)
        starts_at = self._firing_since.setdefault(fingerprint, now)
        if status is AlertStatus.RESOLVED:
            del self._firing_since[fingerprint]
        signal = Signal(
            source=Source.ALERTMANAGER,
            name=labels.get("alertname", ""),
            fingerprint=fingerprint,
            status=status,
            starts_at=starts_at,
            ends_at=now if status is AlertStatus.RESOLVED else None,
            labels=labels,
            annotations=annotations,
            received_at=now,
        )
        self.deliver([signal], now)

    def deliver(self, signals: Sequence[Signal], now: datetime) -> None:
        """Signals stored on arrival and taken up together by the engine's cycle at ``now``.

        A replay of a stored signal (same occurrence and status) only refreshes when it was
        last seen. The others go to their rule groups, or to the open incidents holding them.
        """
        fresh = []
        for signal in signals:
            stored = (signal.fingerprint, signal.starts_at, signal.status)
            if stored not in self._received:
                fresh.append(signal)
            self._received[stored] = signal.received_at
        groups: dict[tuple[str, str], tuple[RuleMatch, list[Signal]]] = {}
        for signal in fresh:
            holders = [
                i for i in self.incidents.values() if i.is_open and signal.occurrence in i.alerts
            ]
            for match in to_attached_incidents(self.rules.route(signal), holders, self.rules):
                key = (match.rule.name, match.group_key)
                groups.setdefault(key, (match, []))[1].append(signal)
        order = decision_order(self.rules)  # as the engine's batch: superseding rules first
        for match, grouped in sorted(groups.values(), key=lambda g: order.get(g[0].rule.name, 0)):
            self._correlate(match, grouped, now)

    def act(self, rule: str, action: str, now: datetime) -> None:
        """Acknowledge or resolve the open incident of ``rule`` (if there is one)."""
        for incident in list(self.incidents.values()):
            if incident.rule == rule and incident.is_open:
                if action == "ack":
                    decision = decide_ack(incident, ACTOR, "test", self.rules.rules.get(rule), now)
                else:
                    decision = decide_resolve(incident, ACTOR, "resolved in test", now)
                self._apply(mute(decision, self.rules, now, incident), incident, now)

    def next_timer(self) -> datetime | None:
        """When the earliest pending timer falls due."""
        return self._timers[0][0] if self._timers else None

    def fire_due(self, now: datetime) -> None:
        """Fire every timer due at or before ``now``, earliest first."""
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if timer.incident_id is None:
                self._check_condition(timer, now)
            else:
                incident = self.incidents[timer.incident_id]
                rule = self.rules.rules.get(incident.rule)
                last_seen = self._last_seen(incident.alerts) or incident.last_signal_at
                decision = decide_timer(incident, timer, rule, last_seen, now)
                self._apply(mute(decision, self.rules, now, incident), incident, now)

    def _check_condition(self, timer: Timer, now: datetime) -> None:
        """A check the group's later state moved or dropped is superseded, as in the engine."""
        group = self._groups.get((timer.rule or "", timer.group_key or ""))
        if group is not None and group.check_at == timer.due_at:
            self._correlate(group.match, [], now)

    def _correlate(self, match: RuleMatch, signals: list[Signal], now: datetime) -> None:
        key = (match.rule.name, match.group_key)
        group = self._groups.setdefault(key, _Group(match))
        seen = None
        if match.rule.heartbeat is not None:
            seen = self._last_firing(set(group.state.get("fingerprints", [])))
        current = current_incident(
            i for i in self.incidents.values() if (i.rule, i.group_key) == key
        )
        change = decide_group(self.rules, match, current, group.state, signals, now, seen)
        condition = change.condition
        if condition is not None:
            self.checks.append(ConditionCheck(now, *key, tuple(signals), condition))
            group.state = self._stored(condition.state)
            if condition.check_at not in (None, group.check_at):
                self._push(
                    Timer(0, None, TimerKind.CONDITION_CHECK, condition.check_at, 0, {}, *key)
                )
            group.check_at = condition.check_at
        if change.decision is not None:
            self._apply(change.decision, current, now)

    def _stored(self, state: State) -> State:
        """The state as the engine reads it back from its jsonb column (same codec)."""
        if not self._state_as_json:
            return state
        stored: State = orjson.loads(orjson.dumps(state, default=dict))
        return stored

    def _apply(self, decision: Decision, before: Incident | None, now: datetime) -> None:
        decision, above, below = self._supersede(decision, before, now)
        incident = decision.incident
        if incident is None:
            return
        incident_id = incident.id if incident.id is not None else len(self.incidents) + 1
        self.incidents[incident_id] = replace(incident, id=incident_id)
        self._supersedes.update((other, incident_id) for other in above)
        self._supersedes.update((incident_id, other) for other in below)
        if decision.resolved:
            self._release(incident_id, now)
        for spec in decision.timers:
            self._push(Timer(0, incident_id, spec.kind, spec.due_at, incident.epoch, spec.payload))
        for page in decision.pages:
            self.pages.append(SentPage(now, page.channel, page.event.value, incident_id))

    def _supersede(
        self, decision: Decision, before: Incident | None, now: datetime
    ) -> tuple[Decision, list[int], list[int]]:
        """What ``engine.superseding.settle`` does, on the incidents in memory: the decision,
        the open incidents superseding its incident and those it covers."""
        incident = decision.incident
        if incident is None:
            return decision, [], []
        open_now = [Party.of(i, key) for key, i in self.incidents.items() if i.is_open]
        above = superseders(incident, open_now, self.rules) if would_page(decision) else []
        if above:
            decision = hold(decision, above[0], before, now)
        below: list[Party] = []
        if opens(decision):
            below = covered(incident, open_now, self.rules)
        elif incident.id is not None and names_covered(decision):
            ids = [b for a, b in self._supersedes if a == incident.id and self.incidents[b].is_open]
            decision = cover(decision, ids)
        return decision, [a.id for a in above], [b.id for b in below]

    def _release(self, superseding_id: int, now: datetime) -> None:
        """Make the escalations a resolved superseding incident deferred due now."""
        self._timers = [
            (now, order, replace(timer, due_at=now))
            if due > now and timer.payload.get(SUPERSEDED_BY) == superseding_id
            else (due, order, timer)
            for due, order, timer in self._timers
        ]
        heapq.heapify(self._timers)

    def _push(self, timer: Timer) -> None:
        heapq.heappush(self._timers, (timer.due_at, next(self._sequence), timer))

    def _last_seen(self, occurrences: Iterable[Occurrence]) -> datetime | None:
        """When any of these occurrences last arrived, replays included (for silence checks)."""
        held = set(occurrences)
        times = [at for (fp, start, _), at in self._received.items() if (fp, start) in held]
        return max(times, default=None)

    def _last_firing(self, fingerprints: set[str]) -> datetime | None:
        """When any of these alerts last arrived firing (for heartbeats)."""
        times = [
            at
            for (fp, _, status), at in self._received.items()
            if fp in fingerprints and status is AlertStatus.FIRING
        ]
        return max(times, default=None)
