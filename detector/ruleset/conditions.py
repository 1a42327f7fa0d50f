"""Pure rule conditions: when matching alerts count as an incident.

``evaluate`` takes the group's stored condition state, newly arrived signals and ``now``; it
returns the new state, the signals to hand to the incident decision now (``release``), and when to
look again without new signals (``check_at``, a durable timer). State is plain JSON so it lives in
PostgreSQL and survives restarts; the same inputs give the same answer on any replica.

Once an incident is open for the group, signals pass straight through (new alerts attach,
resolutions resolve), except for heartbeats, whose incident means "nothing arrived".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from detector.domain.durations import format_duration
from detector.domain.model import AlertStatus, Signal, Source
from detector.ruleset.matchers import matches_all
from detector.ruleset.schema import RuleSpec, ThresholdSpec

State = dict[str, Any]
HEARTBEAT_RECHECK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """What a condition concluded; ``note`` names why, for the timeline and tests."""

    state: State
    release: tuple[Signal, ...] = ()
    check_at: datetime | None = None
    note: str = ""


def evaluate(
    rule: RuleSpec,
    state: State,
    signals: Sequence[Signal],
    now: datetime,
    incident_open: bool,
    last_seen: datetime | None = None,
) -> ConditionResult:
    """Apply new ``signals`` (possibly none, when a check timer fires) to the rule's condition."""
    if rule.heartbeat is not None:
        return _heartbeat(
            rule, rule.heartbeat.within, state, signals, now, incident_open, last_seen
        )
    if incident_open:
        passing = tuple(s for s in signals if not _is_expected(rule, s))
        return ConditionResult({}, passing, note="incident_open")
    return _in_arrival_order(rule, state, signals, now)


def _in_arrival_order(
    rule: RuleSpec, state: State, signals: Sequence[Signal], now: datetime
) -> ConditionResult:
    """Apply a batch one signal at a time, at its arrival time, letting deadlines that fell
    before an arrival fire first; once the condition releases, the rest joins the incident."""
    ordered = sorted(signals, key=lambda signal: signal.received_at)
    last: ConditionResult | None = None
    for index, signal in enumerate(ordered):
        for batch in ((), (signal,)):
            step = _before_incident(rule, state, batch, signal.received_at)
            if step.release:
                rest = ordered[index + len(batch) :]
                joining = tuple(s for s in rest if not _is_expected(rule, s))
                return replace(step, release=step.release + joining)
            state, last = step.state, step
    if last is not None and not state:
        return last  # nothing left waiting: keep the reason (e.g. expected_arrived)
    return _before_incident(rule, state, (), now)


def _before_incident(
    rule: RuleSpec, state: State, signals: Sequence[Signal], now: datetime
) -> ConditionResult:
    if rule.for_ is not None:
        return _for(rule.for_, state, signals, now)
    if rule.threshold is not None:
        return _threshold(rule.threshold, state, signals, now)
    if rule.absent is not None:
        return _absent(rule, rule.absent.within, state, signals, now)
    if rule.all_of is not None:
        return _all_of(rule, state, signals)
    return ConditionResult({}, tuple(signals), note="matched")


def kept_waiting(state: State) -> tuple[Signal, ...]:
    """The firing alerts a condition's state keeps waiting (``for``, ``absent``, ``all_of``):
    what must join the incident at once if the rule loses its condition."""
    return _signals(state.get("pending", {}))


def _is_expected(rule: RuleSpec, signal: Signal) -> bool:
    return rule.absent is not None and matches_all(rule.absent.expect, signal.labels)


def _for(
    duration: timedelta, state: State, signals: Sequence[Signal], now: datetime
) -> ConditionResult:
    pending = _track_firing(state.get("pending", {}), signals)
    ripe = {k: v for k, v in pending.items() if now >= _at(v["since"]) + duration}
    waiting = {k: v for k, v in pending.items() if k not in ripe}
    if ripe:
        return ConditionResult({}, _signals(pending), note="held_long_enough")
    check_at = min((_at(v["since"]) + duration for v in waiting.values()), default=None)
    return ConditionResult(_keep(pending=waiting), check_at=check_at, note="waiting")


def _threshold(
    spec: ThresholdSpec, state: State, signals: Sequence[Signal], now: datetime
) -> ConditionResult:
    events = [e for e in state.get("events", []) if _at(e["at"]) > now - spec.within]
    for signal in signals:
        if signal.status is AlertStatus.FIRING:
            value = signal.labels.get(spec.distinct, "") if spec.distinct else signal.fingerprint
            events.append(
                {"at": signal.received_at.isoformat(), "value": value, "signal": _dump(signal)}
            )
    counted = len({e["value"] for e in events}) if spec.distinct else len(events)
    if counted >= spec.count:
        latest = {(e["signal"]["fingerprint"], e["signal"]["starts_at"]): e for e in events}
        return ConditionResult({}, _signals(latest), note="threshold_met")
    return ConditionResult(_keep(events=events), note="below_threshold")


def _absent(
    rule: RuleSpec, within: timedelta, state: State, signals: Sequence[Signal], now: datetime
) -> ConditionResult:
    """An expected alert stands armed triggers down, and covers triggers arriving less than
    ``within`` after it: Alertmanager sends each group on its own timers, so the follow-up can
    be delivered before the alert it follows."""
    armed: dict[str, Any] = dict(state.get("pending", {}))
    if any(_is_expected(rule, s) and s.status is AlertStatus.FIRING for s in signals):
        return ConditionResult({"expected_at": now.isoformat()}, note="expected_arrived")
    expected_at = state.get("expected_at")
    if expected_at is not None and now < _at(expected_at) + within:
        return ConditionResult({"expected_at": expected_at}, note="expected_arrived")
    triggers = [s for s in signals if not _is_expected(rule, s)]
    armed = _track_firing(armed, triggers)
    if any(now >= _at(v["since"]) + within for v in armed.values()):
        return ConditionResult({}, _signals(armed), note="expected_missing")
    check_at = min((_at(v["since"]) + within for v in armed.values()), default=None)
    return ConditionResult(_keep(pending=armed), check_at=check_at, note="waiting_for_expected")


def _all_of(rule: RuleSpec, state: State, signals: Sequence[Signal]) -> ConditionResult:
    selectors = rule.all_of or ()
    firing = _track_firing(state.get("pending", {}), signals)
    covered = {
        index
        for index, selector in enumerate(selectors)
        for entry in firing.values()
        if matches_all(selector, entry["signal"]["labels"])
    }
    if len(covered) == len(selectors):
        return ConditionResult({}, _signals(firing), note="all_conditions_true")
    return ConditionResult(_keep(pending=firing), note="waiting_for_others")


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
    seen = [_at(state["last_seen"])] if "last_seen" in state else []
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
    since = _at(lost_since)
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


def _track_firing(pending: Mapping[str, Any], signals: Sequence[Signal]) -> dict[str, Any]:
    """Keep firing occurrences (with when they first arrived); drop those that resolved."""
    tracked = dict(pending)
    for signal in signals:
        key = f"{signal.fingerprint}@{signal.starts_at.isoformat()}"
        if signal.status is AlertStatus.RESOLVED:
            tracked.pop(key, None)
        elif key not in tracked:
            tracked[key] = {"since": signal.received_at.isoformat(), "signal": _dump(signal)}
    return tracked


def _keep(**parts: Any) -> State:
    return {name: value for name, value in parts.items() if value}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _signals(entries: Mapping[Any, Mapping[str, Any]]) -> tuple[Signal, ...]:
    return tuple(_load(entry["signal"]) for entry in entries.values())


def _dump(signal: Signal) -> dict[str, Any]:
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


def _load(data: Mapping[str, Any]) -> Signal:
    return Signal(
        source=Source(data["source"]),
        name=data["name"],
        fingerprint=data["fingerprint"],
        status=AlertStatus(data["status"]),
        starts_at=_at(data["starts_at"]),
        ends_at=_at(data["ends_at"]) if data["ends_at"] else None,
        labels=data["labels"],
        annotations=data["annotations"],
        received_at=_at(data["received_at"]),
    )
