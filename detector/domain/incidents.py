"""Pure incident decisions: given the current incident, an event and ``now``, say what changes.

No I/O happens here. The store loads the incident, calls one of the ``decide_*`` functions and
applies the returned Decision (state, timeline, timers, pages) in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from detector.domain.durations import format_duration
from detector.domain.escalation import (
    Reach,
    ack_timed_out,
    ack_timer,
    escalate,
    first_step_now,
    needs_people,
    next_timer,
)
from detector.domain.model import (
    AlertState,
    AlertStatus,
    Decision,
    Incident,
    IncidentState,
    Occurrence,
    PageOrder,
    Signal,
    TimelineEntry,
    Timer,
    TimerKind,
    TimerSpec,
)
from detector.domain.reasons import DecisionReason
from detector.ruleset.rules import RuleMatch
from detector.ruleset.schema import RuleSpec
from detector.ruleset.templates import render
from responders.escalation import EscalationPolicy
from responders.messages import PageEvent

SYSTEM_ACTOR = "stormwatch"
_TIMELINE_SAMPLE = 10
_ALREADY = {
    IncidentState.ACKNOWLEDGED: DecisionReason.ALREADY_ACKNOWLEDGED,
    IncidentState.RESOLVED: DecisionReason.ALREADY_RESOLVED,
}
_AND_RESOLVED = {
    DecisionReason.OPENED: DecisionReason.OPENED_AND_RESOLVED,
    DecisionReason.REOPENED: DecisionReason.REOPENED_AND_RESOLVED,
    DecisionReason.ATTACHED: DecisionReason.ATTACHED_AND_RESOLVED,
}


def decide_signals(
    current: Incident | None,
    signals: Sequence[Signal],
    match: RuleMatch,
    policy: EscalationPolicy | None,
    now: datetime,
) -> Decision:
    """New signals for one (rule, group): open, reopen, attach to, or resolve the incident.

    ``current`` is the open incident for the group, or else the most recently resolved one.
    """
    if current is not None and current.is_open:
        return _attach(current, signals, match.rule, now)
    attached = current.alerts if current is not None else {}
    if not any(s.status is AlertStatus.FIRING and s.occurrence not in attached for s in signals):
        return Decision(DecisionReason.NO_NEW_FIRING_ALERT)
    if current is not None and _within_reopen(current, match.rule, now):
        return _reopen(current, signals, match.rule, now)
    return _open(signals, match, policy, now)


def decide_ack(
    incident: Incident,
    by: str,
    via: str,
    rule: RuleSpec | None,
    now: datetime,
    episode: int | None = None,
) -> Decision:
    """An engineer acknowledges: escalation stops (epoch bump), paged channels hear about it.

    ``episode`` is the epoch an ack link was sent in: a link from before the incident was
    resolved and reopened acknowledges nothing (``LINK_SUPERSEDED``).
    """
    if incident.state is not IncidentState.TRIGGERED:
        return Decision(_ALREADY[incident.state])
    if episode is not None and episode != incident.epoch:
        return Decision(DecisionReason.LINK_SUPERSEDED)
    acked = replace(
        incident,
        state=IncidentState.ACKNOWLEDGED,
        epoch=incident.epoch + 1,
        acknowledged_at=now,
        acknowledged_by=by,
    )
    return Decision(
        DecisionReason.ACKNOWLEDGED,
        incident=acked,
        timeline=(TimelineEntry("incident.acknowledged", now, {"by": by, "via": via}),),
        timers=_silence_timer(acked, rule) + ack_timer(acked),
        pages=_pages(acked, PageEvent.ACKNOWLEDGED),
    )


def decide_resolve(incident: Incident, by: str, reason: str, now: datetime) -> Decision:
    """Resolve by hand or by automation; a resolved incident stays resolved."""
    if not incident.is_open:
        return Decision(DecisionReason.ALREADY_RESOLVED)
    return _resolve(incident, by, reason, now)


def decide_timer(
    incident: Incident,
    timer: Timer,
    rule: RuleSpec | None,
    last_seen: datetime,
    now: datetime,
    reach: Reach | None = None,
) -> Decision:
    """A due timer fires; ``last_seen`` is the latest time any of the incident's alerts arrived,
    ``reach`` who each escalation step reaches now (the engine resolves it for escalation and
    ack-timeout timers; without it a step reaches its own people and channels)."""
    if timer.epoch != incident.epoch:
        return Decision(DecisionReason.STALE_EPOCH)
    if not incident.is_open:
        return Decision(DecisionReason.NOT_OPEN)
    if timer.kind in (TimerKind.ESCALATE, TimerKind.ACK_TIMEOUT):
        return _paging_timer(incident, timer, rule, reach or Reach(), now)
    resolve_after = rule.resolve_after if rule is not None else None
    if resolve_after is None:
        return Decision(DecisionReason.SILENCE_RULE_REMOVED)
    quiet_since = max(last_seen, incident.last_signal_at)
    if now < quiet_since + resolve_after:
        recheck = TimerSpec(TimerKind.SILENCE_CHECK, quiet_since + resolve_after)
        return Decision(DecisionReason.STILL_ACTIVE, incident=incident, timers=(recheck,))
    return _resolve(incident, SYSTEM_ACTOR, f"no signal for {format_duration(resolve_after)}", now)


def _open(
    signals: Sequence[Signal], match: RuleMatch, policy: EscalationPolicy | None, now: datetime
) -> Decision:
    rule = match.rule
    first = next(signal for signal in signals if signal.status is AlertStatus.FIRING)
    labels = {**first.labels, **match.group_labels}
    alerts, changed = _merge_alerts({}, signals, now)
    resolve_first = needs_people(policy, 0)
    incident = Incident(
        rule=rule.name,
        group_key=match.group_key,
        group_labels=match.group_labels,
        state=IncidentState.TRIGGERED,
        severity=rule.severity,
        title=render(rule.title, labels, first.annotations),
        summary=render(rule.summary, labels, first.annotations),
        component=rule.component,
        policy=policy,
        paged=policy.channels_at(0) if policy and not resolve_first else (),
        escalated_at=None if resolve_first else now,
        opened_at=now,
        last_signal_at=now,
        alerts=alerts,
    )
    opened = TimelineEntry(
        "incident.opened",
        now,
        {"rule": rule.name, "severity": rule.severity, "group": dict(match.group_labels)},
    )
    timeline = (opened, *_alert_entries(changed, now))
    decision = Decision(
        DecisionReason.OPENED,
        incident=incident,
        timeline=timeline,
        timers=_first_step(incident, now, PageEvent.TRIGGERED) + _silence_timer(incident, rule),
        pages=() if resolve_first else _pages(incident, PageEvent.TRIGGERED),
        changed_alerts=changed,
        opened=True,
    )
    return _settle(decision, rule, now)


def _reopen(
    current: Incident, signals: Sequence[Signal], rule: RuleSpec, now: datetime
) -> Decision:
    alerts, changed = _merge_alerts(current.alerts, signals, now)
    # Everyone paged before hears it is back, and the first step always does: its page may
    # have been muted by a silence in the first episode, which leaves nobody to tell.
    first_step = current.policy.channels_at(0) if current.policy else ()
    reopened = replace(
        current,
        state=IncidentState.TRIGGERED,
        epoch=current.epoch + 1,
        paged=tuple(dict.fromkeys((*first_step, *current.paged))),
        escalation_step=0,
        escalation_round=0,
        escalated_at=None if needs_people(current.policy, 0) else now,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        last_signal_at=now,
        alerts=alerts,
    )
    resolved_ago = format_duration(now - (current.resolved_at or now))
    decision = Decision(
        DecisionReason.REOPENED,
        incident=reopened,
        timeline=(
            TimelineEntry("incident.reopened", now, {"resolved_ago": resolved_ago}),
            *_alert_entries(changed, now),
        ),
        timers=_first_step(reopened, now, PageEvent.REOPENED) + _silence_timer(reopened, rule),
        pages=_pages(reopened, PageEvent.REOPENED),
        changed_alerts=changed,
    )
    return _settle(decision, rule, now)


def _attach(
    current: Incident, signals: Sequence[Signal], rule: RuleSpec, now: datetime
) -> Decision:
    alerts, changed = _merge_alerts(current.alerts, signals, now)
    if not changed:
        return Decision(DecisionReason.NOTHING_NEW)
    updated = replace(current, alerts=alerts, last_signal_at=now)
    decision = Decision(
        DecisionReason.ATTACHED,
        incident=updated,
        timeline=_alert_entries(changed, now),
        changed_alerts=changed,
    )
    return _settle(decision, rule, now)


def _settle(decision: Decision, rule: RuleSpec, now: datetime) -> Decision:
    """Resolve the incident in the same decision when every alert attached to it has
    resolved."""
    incident = decision.incident
    if incident is None or not rule.auto_resolve or _any_firing(incident.alerts.values()):
        return decision
    resolution = _resolve(incident, SYSTEM_ACTOR, "all alerts resolved", now)
    return replace(
        resolution,
        reason=_AND_RESOLVED[decision.reason],
        timeline=decision.timeline + resolution.timeline,
        pages=decision.pages + resolution.pages,
        changed_alerts=decision.changed_alerts,
        opened=decision.opened,
    )


def _resolve(incident: Incident, by: str, reason: str, now: datetime) -> Decision:
    resolved = replace(
        incident,
        state=IncidentState.RESOLVED,
        epoch=incident.epoch + 1,
        resolved_at=now,
        resolved_by=by,
    )
    return Decision(
        DecisionReason.RESOLVED,
        incident=resolved,
        timeline=(TimelineEntry("incident.resolved", now, {"by": by, "reason": reason}),),
        pages=_pages(resolved, PageEvent.RESOLVED),
        resolved=True,
    )


def _merge_alerts(
    alerts: Mapping[Occurrence, AlertState],
    signals: Iterable[Signal],
    now: datetime,
) -> tuple[dict[Occurrence, AlertState], tuple[AlertState, ...]]:
    """Apply signals to the alerts attached to an incident; an occurrence never goes
    resolved → firing."""
    merged = dict(alerts)
    changed: dict[Occurrence, AlertState] = {}
    for signal in signals:
        known = merged.get(signal.occurrence)
        if known is not None and (
            known.status is AlertStatus.RESOLVED or signal.status is known.status
        ):
            continue
        state = AlertState(
            fingerprint=signal.fingerprint,
            starts_at=signal.starts_at,
            status=signal.status,
            ends_at=signal.ends_at,
            labels=signal.labels,
            last_seen_at=now,
        )
        merged[signal.occurrence] = changed[signal.occurrence] = state
    return merged, tuple(changed.values())


def _alert_entries(changed: Sequence[AlertState], now: datetime) -> tuple[TimelineEntry, ...]:
    entries = []
    for status in AlertStatus:
        group = [alert for alert in changed if alert.status is status]
        if group:
            sample = [
                {"alertname": a.labels.get("alertname", ""), "fingerprint": a.fingerprint}
                for a in group[:_TIMELINE_SAMPLE]
            ]
            entries.append(
                TimelineEntry(f"alerts.{status}", now, {"count": len(group), "alerts": sample})
            )
    return tuple(entries)


def _any_firing(alerts: Iterable[AlertState]) -> bool:
    return any(alert.status is AlertStatus.FIRING for alert in alerts)


def _within_reopen(incident: Incident, rule: RuleSpec, now: datetime) -> bool:
    return incident.resolved_at is not None and now - incident.resolved_at < rule.reopen_within


def _pages(incident: Incident, event: PageEvent) -> tuple[PageOrder, ...]:
    if incident.policy is None:
        return ()
    if event is PageEvent.TRIGGERED:
        channels = incident.policy.channels_at(incident.escalation_step)
    else:  # follow-ups only to those who got the page (a reopen tells them it is back)
        channels = incident.paged
    return tuple(PageOrder(channel, event, incident.escalation_step) for channel in channels)


def _paging_timer(
    incident: Incident, timer: Timer, rule: RuleSpec | None, reach: Reach, now: datetime
) -> Decision:
    """An escalation step falls due, or an acknowledged incident's ack timeout runs out (which
    triggers it again in a new epoch: its silence check moves to that epoch too)."""
    if timer.kind is TimerKind.ESCALATE:
        event = PageEvent(timer.payload.get("event", PageEvent.TRIGGERED))
        position = (int(timer.payload["step"]), _round(timer, incident))
        return escalate(incident, position, reach, now, event)
    decision = ack_timed_out(incident, reach, now)
    if decision.incident is None:
        return decision
    return replace(decision, timers=decision.timers + _silence_timer(decision.incident, rule))


def _first_step(incident: Incident, now: datetime, event: PageEvent) -> tuple[TimerSpec, ...]:
    """A first step of people or schedules pages once the engine has resolved who is on call
    (a timer due now); one of shared channels alone paged with the decision, so only the next
    step's timer is needed."""
    policy = incident.policy
    if policy is None:
        return ()
    if needs_people(policy, 0):
        return (first_step_now(now, event),)
    timer = next_timer(policy, 0, 0, now)
    return () if timer is None else (timer,)


def _round(timer: Timer, incident: Incident) -> int:
    """The chain's run a timer belongs to (escalations deferred by a window name none)."""
    value = timer.payload.get("round")
    return incident.escalation_round if value is None else int(value)


def _silence_timer(incident: Incident, rule: RuleSpec | None) -> tuple[TimerSpec, ...]:
    """Check for silence once ``resolve_after`` has passed since the last signal we know of;
    the check itself re-arms from the latest arrival, replays included."""
    if rule is None or rule.resolve_after is None:
        return ()
    return (TimerSpec(TimerKind.SILENCE_CHECK, incident.last_signal_at + rule.resolve_after),)
