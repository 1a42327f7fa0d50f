"""An in-memory engine for rule tests: the same routing, conditions and decisions as the service,
with the inbox, incidents and timers kept in dictionaries and time stepped explicitly."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime

from detector.domain.incidents import decide_ack, decide_resolve, decide_timer
from detector.domain.model import (
    AlertStatus,
    Decision,
    Incident,
    Signal,
    Source,
    Timer,
    TimerKind,
)
from detector.domain.muting import mute
from detector.engine.correlation import plan
from detector.intake.alertmanager import fingerprint_of
from detector.ruleset.conditions import State
from detector.ruleset.rules import RuleMatch, RuleSet

ACTOR = "rule-test"


@dataclass(frozen=True, slots=True)
class SentPage:
    """A page the simulation delivered."""

    at: datetime
    channel: str
    event: str
    incident_id: int


@dataclass
class _Group:
    match: RuleMatch
    state: State = field(default_factory=dict)
    check_at: datetime | None = None


class Simulation:
    """Feed alerts and actions in time order; read ``incidents`` and ``pages`` afterwards."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.incidents: dict[int, Incident] = {}
        self.pages: list[SentPage] = []
        self._received: dict[tuple[str, datetime, str], datetime] = {}
        self._firing_since: dict[str, datetime] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._timers: list[tuple[datetime, int, Timer]] = []
        self._sequence = itertools.count(1)

    def receive(
        self,
        labels: dict[str, str],
        annotations: dict[str, str],
        status: AlertStatus,
        now: datetime,
    ) -> None:
        """One alert delivered at ``now``; replays only refresh when it was last seen."""
        fingerprint = fingerprint_of(labels)
        starts_at = self._firing_since.setdefault(fingerprint, now)
        if status is AlertStatus.RESOLVED:
            del self._firing_since[fingerprint]
        key = (fingerprint, starts_at, status.value)
        replay = key in self._received
        self._received[key] = now
        if not replay:
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
            for match in self.rules.route(signal):
                self._correlate(match, [signal], now)

    def act(self, rule: str, action: str, now: datetime) -> None:
        """Acknowledge or resolve the open incident of ``rule`` (if there is one)."""
        for incident in list(self.incidents.values()):
            if incident.rule == rule and incident.is_open:
                if action == "ack":
                    decision = decide_ack(incident, ACTOR, "test", self.rules.rules.get(rule), now)
                else:
                    decision = decide_resolve(incident, ACTOR, "resolved in test", now)
                self._apply(mute(decision, self.rules, now, incident), now)

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
                seen = self._last_seen({a.fingerprint for a in incident.alerts.values()})
                last_seen = max(filter(None, (seen, incident.last_signal_at)))
                decision = decide_timer(incident, timer, rule, last_seen, now)
                self._apply(mute(decision, self.rules, now, incident), now)

    def _check_condition(self, timer: Timer, now: datetime) -> None:
        group = self._groups.get((timer.rule or "", timer.group_key or ""))
        if group is not None and group.check_at == timer.due_at:
            self._correlate(group.match, [], now)

    def _correlate(self, match: RuleMatch, signals: list[Signal], now: datetime) -> None:
        key = (match.rule.name, match.group_key)
        group = self._groups.setdefault(key, _Group(match))
        seen = self._last_seen(set(group.state.get("fingerprints", [])), firing_only=True)
        result = plan(self.rules, match, self._current(key), group.state, signals, now, seen)
        if result.condition is not None:
            group.state = result.condition.state
            if result.condition.check_at not in (None, group.check_at):
                self._push(
                    Timer(
                        0, None, TimerKind.CONDITION_CHECK, result.condition.check_at, 0, {}, *key
                    )
                )
            group.check_at = result.condition.check_at
        if result.decision is not None:
            self._apply(result.decision, now)

    def _current(self, key: tuple[str, str]) -> Incident | None:
        candidates = [i for i in self.incidents.values() if (i.rule, i.group_key) == key]
        open_ones = [i for i in candidates if i.is_open]
        if open_ones:
            return open_ones[0]
        return max(
            candidates, key=lambda i: (i.resolved_at or i.opened_at, i.id or 0), default=None
        )

    def _apply(self, decision: Decision, now: datetime) -> None:
        incident = decision.incident
        if incident is None:
            return
        incident_id = incident.id if incident.id is not None else len(self.incidents) + 1
        self.incidents[incident_id] = replace(incident, id=incident_id)
        for spec in decision.timers:
            self._push(Timer(0, incident_id, spec.kind, spec.due_at, incident.epoch, spec.payload))
        for page in decision.pages:
            self.pages.append(SentPage(now, page.channel, page.event.value, incident_id))

    def _push(self, timer: Timer) -> None:
        heapq.heappush(self._timers, (timer.due_at, next(self._sequence), timer))

    def _last_seen(self, fingerprints: set[str], firing_only: bool = False) -> datetime | None:
        times = [
            at
            for (fp, _, status), at in self._received.items()
            if fp in fingerprints and not (firing_only and status != AlertStatus.FIRING)
        ]
        return max(times, default=None)
