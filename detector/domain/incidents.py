"""Pure incident decisions: given the current incident, an event and ``now``, say what changes.

No I/O happens here. The store loads the incident, calls one of the ``decide_*`` functions and
applies the returned Decision (state, timeline, timers, pages) in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from detector.domain.durations import format_duration
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
        timers=_silence_timer(acked, rule),
        pages=_pages(acked, PageEvent.ACKNOWLEDGED),
    )


def decide_resolve(incident: Incident, by: str, reason: str, now: datetime) -> Decision:
    """Resolve by hand or by automation; a resolved incident stays resolved."""
    if not incident.is_open:
        return Decision(DecisionReason.ALREADY_RESOLVED)
    return _resolve(incident, by, reason, now)


def decide_timer(
    incident: Incident, timer: Timer, rule: RuleSpec | None, last_seen: datetime, now: datetime
) -> Decision:
    """A due timer fires; ``last_seen`` is the latest time any of the incident's alerts arrived."""
    if timer.epoch != incident.epoch:
        return Decision(DecisionReason.STALE_EPOCH)
    if not incident.is_open:
        return Decision(DecisionReason.NOT_OPEN)
    if timer.kind is TimerKind.ESCALATE:
        return _escalate(incident, int(timer.payload["step"]), now)
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
        paged=policy.channels_at(0) if policy else (),
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
        timers=_escalation_timer(incident, 0, now) + _silence_timer(incident, rule),
        pages=_pages(incident, PageEvent.TRIGGERED),
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
        timers=_escalation_timer(reopened, 0, now) + _silence_timer(reopened, rule),
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


def _escalate(incident: Incident, step: int, now: datetime) -> Decision:
    if incident.state is not IncidentState.TRIGGERED:
        return Decision(DecisionReason.NOT_TRIGGERED)
    channels = incident.policy.channels_at(step) if incident.policy else ()
    if not channels:
        return Decision(DecisionReason.NO_MORE_STEPS)
    paged = tuple(dict.fromkeys((*incident.paged, *channels)))
    escalated = replace(incident, escalation_step=step, paged=paged)
    return Decision(
        DecisionReason.ESCALATED,
        incident=escalated,
        timeline=(
            TimelineEntry("incident.escalated", now, {"step": step, "channels": list(channels)}),
        ),
        timers=_escalation_timer(escalated, step, now),
        pages=tuple(PageOrder(channel, PageEvent.TRIGGERED, step) for channel in channels),
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


def _escalation_timer(incident: Incident, step: int, now: datetime) -> tuple[TimerSpec, ...]:
    due = incident.policy.next_escalation(step, now) if incident.policy else None
    return () if due is None else (TimerSpec(TimerKind.ESCALATE, due, {"step": step + 1}),)


def _silence_timer(incident: Incident, rule: RuleSpec | None) -> tuple[TimerSpec, ...]:
    """Check for silence once ``resolve_after`` has passed since the last signal we know of;
    the check itself re-arms from the latest arrival, replays included."""
    if rule is None or rule.resolve_after is None:
        return ()
    return (TimerSpec(TimerKind.SILENCE_CHECK, incident.last_signal_at + rule.resolve_after),)
