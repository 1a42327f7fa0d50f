"""Pure rule conditions: when matching alerts count as an incident.

``decide`` takes a group's stored summary (``Tally`` and the condition's own fields), the members
it asked for (``needed``), newly arrived signals and ``now``; it returns what changed in the
group's waiting members, the signals to hand to the incident decision now (``release``), and when
to look again without new signals (``check_at``, a durable timer). Its cost grows with the batch,
never with how many alerts the group keeps waiting (``waiting``). ``evaluate`` is the same on the
whole state as one JSON document (rule tests keep it in memory); the engine stores the members as
rows. The same inputs give the same answer on any replica.

Once an incident is open for the group, signals pass straight through (new alerts attach,
resolutions resolve), except for heartbeats, whose incident means "nothing arrived".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from detector.domain.durations import format_duration
from detector.domain.model import AlertStatus, Signal, Source
from detector.ruleset.matchers import matches_all
from detector.ruleset.schema import RuleSpec, ThresholdSpec
from detector.ruleset.waiting import (
    WAITING_LIMIT,
    Change,
    Ledger,
    Member,
    Need,
    Part,
    Tally,
    basis,
    dump_signal,
    load_signal,
    occurrence_key,
    part_of,
    track_firing,
)

State = dict[str, Any]
HEARTBEAT_RECHECK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """What a condition concluded; ``note`` names why, for the timeline and tests."""

    state: State
    release: tuple[Signal, ...] = ()
    check_at: datetime | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a condition concluded, as changes to the group's members: ``summary`` is the state
    without them; ``release`` goes to the incident decision after, with ``release_waiting``,
    every member still stored (``released``)."""

    summary: State
    change: Change = field(default_factory=Change)
    release: tuple[Signal, ...] = ()
    release_waiting: bool = False
    check_at: datetime | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Step:
    release: bool = False
    check_at: datetime | None = None
    note: str = ""


@dataclass(slots=True)
class _Group:
    """A group's state while one batch is applied."""

    ledger: Ledger
    expected_at: datetime | None = None

    def empty(self) -> bool:
        return not self.ledger.count and self.expected_at is None


def evaluate(
    rule: RuleSpec,
    state: State,
    signals: Sequence[Signal],
    now: datetime,
    incident_open: bool,
    last_seen: datetime | None = None,
    limit: int = WAITING_LIMIT,
) -> ConditionResult:
    """Apply new ``signals`` (possibly none, when a check timer fires) to the rule's condition,
    the whole state in and out as one JSON document."""
    summary = {name: value for name, value in state.items() if name not in tuple(Part)}
    members = _members(state)
    need = needed(rule, summary, signals, now, incident_open, limit)
    outcome = decide(
        rule, summary, need.select(members), signals, now, incident_open, last_seen, limit
    )
    return ConditionResult(
        _joined(outcome, state), released(outcome, members), outcome.check_at, outcome.note
    )


def needed(
    rule: RuleSpec,
    summary: State,
    signals: Sequence[Signal],
    now: datetime,
    incident_open: bool,
    limit: int = WAITING_LIMIT,
) -> Need:
    """Which stored members ``decide`` must be given for this batch."""
    part = part_of(rule)
    if rule.heartbeat is not None or incident_open or part is None:
        return Need()
    tally = Tally.from_json(summary["tally"]) if "tally" in summary else None
    if tally is None or tally.part is not part or tally.basis != basis(rule):
        # Nothing waits, or a state from before tallies (read all), or the members are another
        # condition's (dropped), or were counted against other selectors (counted again).
        return Need(everything=tally is None or tally.part is part)
    keys = frozenset(occurrence_key(signal) for signal in signals)
    firing = sum(signal.status is AlertStatus.FIRING for signal in signals)
    earliest = max(tally.count + firing - limit, 0)  # those leaving a full group
    until = None
    if rule.threshold is not None:
        latest = max((signal.received_at for signal in signals), default=now)
        until = max(now, latest) - rule.threshold.within
    elif rule.all_of is None:  # for, absent: the earliest left after resolutions
        earliest += len(signals) - firing + 1
    return Need(keys, earliest, until)


def decide(
    rule: RuleSpec,
    summary: State,
    members: Sequence[Member],
    signals: Sequence[Signal],
    now: datetime,
    incident_open: bool,
    last_seen: datetime | None = None,
    limit: int = WAITING_LIMIT,
) -> Outcome:
    """Apply ``signals`` to the condition, given the ``members`` that ``needed`` asked for."""
    if rule.heartbeat is not None:
        beat = _heartbeat(
            rule, rule.heartbeat.within, summary, signals, now, incident_open, last_seen
        )
        return Outcome(beat.state, release=beat.release, check_at=beat.check_at, note=beat.note)
    if incident_open:
        passing = tuple(s for s in signals if not _is_expected(rule, s))
        return Outcome({}, Change(cleared=True), passing, note="incident_open")
    tally = Tally.from_json(summary["tally"]) if "tally" in summary else None
    expected_at = summary.get("expected_at")
    group = _Group(
        Ledger(rule, tally, members, limit),
        None if expected_at is None else datetime.fromisoformat(expected_at),
    )
    return _in_arrival_order(rule, group, signals, now)


def released(outcome: Outcome, stored: Sequence[Member]) -> tuple[Signal, ...]:
    """What ``outcome`` hands to the incident decision, given every member stored before it (in
    arrival order; only read when it releases them)."""
    if not outcome.release_waiting:
        return outcome.release
    gone = outcome.change.removed
    return tuple(m.signal for m in stored if m.key not in gone) + outcome.release


def _in_arrival_order(
    rule: RuleSpec, group: _Group, signals: Sequence[Signal], now: datetime
) -> Outcome:
    """Apply a batch one signal at a time, at its arrival time, letting deadlines that fell
    before an arrival fire first; once the condition releases, the rest joins the incident."""
    ordered = sorted(signals, key=lambda signal: signal.received_at)
    last: _Step | None = None
    for index, signal in enumerate(ordered):
        for batch in ((), (signal,)):
            step = _before_incident(rule, group, batch, signal.received_at)
            if step.release:
                rest = ordered[index + len(batch) :]
                return _release(group, step, tuple(s for s in rest if not _is_expected(rule, s)))
            last = step
    if last is None or not group.empty():  # else keep the reason (e.g. expected_arrived)
        last = _before_incident(rule, group, (), now)
        if last.release:
            return _release(group, last, ())
    return _waiting(group, last)


def _release(group: _Group, step: _Step, joining: tuple[Signal, ...]) -> Outcome:
    """Every live member goes to the incident decision, then ``joining``; nothing waits."""
    ledger = group.ledger
    stored = not ledger.cleared
    fresh = tuple(member.signal for member in ledger.added.values())
    change = Change(removed=frozenset(ledger.removed), cleared=True, dropped=dict(ledger.dropped))
    return Outcome({}, change, fresh + joining, stored, note=step.note)


def _waiting(group: _Group, step: _Step) -> Outcome:
    summary: State = {}
    tally = group.ledger.tally()
    if tally is not None:
        summary["tally"] = tally.to_json()
    if group.expected_at is not None:
        summary["expected_at"] = group.expected_at.isoformat()
    return Outcome(summary, group.ledger.change(), check_at=step.check_at, note=step.note)


def _before_incident(
    rule: RuleSpec, group: _Group, signals: Sequence[Signal], now: datetime
) -> _Step:
    if rule.for_ is not None:
        return _for(group.ledger, rule.for_, signals, now)
    if rule.threshold is not None:
        return _threshold(group.ledger, rule.threshold, signals, now)
    if rule.absent is not None:
        return _absent(rule, rule.absent.within, group, signals, now)
    if rule.all_of is not None:
        return _all_of(group.ledger, signals)
    return _Step(release=True, note="matched")


def _is_expected(rule: RuleSpec, signal: Signal) -> bool:
    return rule.absent is not None and matches_all(rule.absent.expect, signal.labels)


def _for(ledger: Ledger, duration: timedelta, signals: Sequence[Signal], now: datetime) -> _Step:
    track_firing(ledger, signals)
    first = ledger.earliest()
    if first is not None and now >= first.at + duration:
        return _Step(release=True, note="lasted_long_enough")
    return _Step(check_at=None if first is None else first.at + duration, note="waiting")


def _threshold(
    ledger: Ledger, spec: ThresholdSpec, signals: Sequence[Signal], now: datetime
) -> _Step:
    ledger.prune(now - spec.within)
    for signal in signals:
        key = occurrence_key(signal)
        if signal.status is AlertStatus.FIRING and ledger.get(key) is None:
            value = signal.labels.get(spec.distinct, "") if spec.distinct else signal.fingerprint
            ledger.add(Member(key, signal.received_at, signal, value))
    counted = ledger.distinct_count() if spec.distinct else ledger.count
    if counted >= spec.count:
        return _Step(release=True, note="threshold_met")
    return _Step(note="below_threshold")


def _absent(
    rule: RuleSpec, within: timedelta, group: _Group, signals: Sequence[Signal], now: datetime
) -> _Step:
    """An expected alert stands armed triggers down, and covers triggers arriving less than
    ``within`` after it: Alertmanager sends each group on its own timers, so the follow-up can
    be delivered before the alert it follows."""
    ledger = group.ledger
    if any(_is_expected(rule, s) and s.status is AlertStatus.FIRING for s in signals):
        group.expected_at = now
    if group.expected_at is not None and now < group.expected_at + within:
        if ledger.count:
            ledger.clear()
        return _Step(note="expected_arrived")
    group.expected_at = None
    track_firing(ledger, [s for s in signals if not _is_expected(rule, s)])
    first = ledger.earliest()
    if first is not None and now >= first.at + within:
        return _Step(release=True, note="expected_missing")
    check_at = None if first is None else first.at + within
    return _Step(check_at=check_at, note="waiting_for_expected")


def _all_of(ledger: Ledger, signals: Sequence[Signal]) -> _Step:
    track_firing(ledger, signals)
    if ledger.all_covered():
        return _Step(release=True, note="all_conditions_true")
    return _Step(note="waiting_for_others")


def _heartbeat(
    rule: RuleSpec,
    within: timedelta,
    state: State,
    signals: Sequence[Signal],
    now: datetime,
    incident_open: bool,
    last_seen: datetime | None,
) -> ConditionResult:
    fingerprints = sorted({*state.get("fingerprints", []), *(s.fingerprint for s in signals)})
    seen = [datetime.fromisoformat(state["last_seen"])] if "last_seen" in state else []
    seen += [s.received_at for s in signals if s.status is AlertStatus.FIRING]
    seen += [last_seen] if last_seen is not None else []
    if not seen:
        return ConditionResult({}, note="not_started")
    latest = max(seen)
    kept: State = {"fingerprints": fingerprints, "last_seen": latest.isoformat()}
    lost_since = state.get("lost_since")
    # Repeats of the same heartbeat never reach here (the inbox keeps one row per occurrence),
    # so while it is missing, look again regularly for replays that arrived meanwhile.
    recheck = now + min(within, HEARTBEAT_RECHECK)
    if now >= latest + within:
        if lost_since is not None:
            return ConditionResult(
                {**kept, "lost_since": lost_since}, check_at=recheck, note="still_missing"
            )
        kept["lost_since"] = (latest + within).isoformat()
        lost = _lost_signal(rule, kept["lost_since"], now)
        return ConditionResult(kept, (lost,), check_at=recheck, note="heartbeat_lost")
    release: tuple[Signal, ...] = ()
    if lost_since is not None and incident_open:
        back = _lost_signal(rule, lost_since, now)
        release = (replace(back, status=AlertStatus.RESOLVED, ends_at=now),)
    return ConditionResult(kept, release, check_at=latest + within, note="heartbeat_seen")


def _lost_signal(rule: RuleSpec, lost_since: str, now: datetime) -> Signal:
    """The synthetic alert attached to a heartbeat incident; its occurrence starts when it was
    lost."""
    since = datetime.fromisoformat(lost_since)
    within = rule.heartbeat.within if rule.heartbeat else timedelta(0)
    return Signal(
        source=Source.ALERTMANAGER,
        name=rule.name,
        fingerprint=f"heartbeat:{rule.name}",
        status=AlertStatus.FIRING,
        starts_at=since,
        ends_at=None,
        labels={"alertname": rule.name},
        annotations={"summary": f"no heartbeat for {format_duration(within)}"},
        received_at=now,
    )


def _members(state: Mapping[str, Any]) -> list[Member]:
    """The members of a whole state document, in arrival order."""
    pending: Mapping[str, Any] = state.get(Part.PENDING, {})
    members = [
        Member(key, datetime.fromisoformat(entry["since"]), load_signal(entry["signal"]))
        for key, entry in pending.items()
    ]
    for event in state.get(Part.EVENTS, []):
        signal = load_signal(event["signal"])
        at = datetime.fromisoformat(event["at"])
        members.append(Member(occurrence_key(signal), at, signal, event["value"]))
    return members


def _joined(outcome: Outcome, state: Mapping[str, Any]) -> State:
    """The whole state document after ``outcome``: its summary and its members."""
    joined = dict(outcome.summary)
    if "tally" not in joined:
        return joined
    change = outcome.change
    if joined["tally"]["part"] == Part.PENDING:
        before: Mapping[str, Any] = {} if change.cleared else state.get(Part.PENDING, {})
        pending = {key: entry for key, entry in before.items() if key not in change.removed}
        for member in change.added:
            pending[member.key] = {
                "since": member.at.isoformat(),
                "signal": dump_signal(member.signal),
            }
        joined[Part.PENDING.value] = pending
    else:
        events: list[Any] = [] if change.cleared else state.get(Part.EVENTS, [])
        joined[Part.EVENTS.value] = [e for e in events if _event_key(e) not in change.removed] + [
            {"at": m.at.isoformat(), "value": m.value, "signal": dump_signal(m.signal)}
            for m in change.added
        ]
    return joined


def _event_key(event: Mapping[str, Any]) -> str:
    return f"{event['signal']['fingerprint']}@{event['signal']['starts_at']}"
