"""Silences and maintenance windows: the incident is still recorded, but nobody is paged.

A muted decision keeps its state change and timeline, drops its pages, and, while the incident
is still unacknowledged, defers the current escalation step until the window ends, so an incident
that outlives the window pages then instead of being forgotten. The deferred step is marked with
the window's name (the ``held_by`` key of the timer's stored payload), so a rules reload can
release it at once (``timers.release_deferred``): a window deleted or cut short must not keep pages
back until its old end.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from detector.domain.model import (
    Decision,
    Incident,
    IncidentState,
    TimelineEntry,
    TimerKind,
    TimerSpec,
)
from detector.ruleset.rules import RuleSet

DEFERRED_BY = "held_by"
"""The payload key naming the window that deferred an escalation (stored; the SQL that releases
deferred escalations looks for it)."""


def incident_labels(incident: Incident) -> dict[str, str]:
    """The labels a window's matchers are checked against: an alert's labels and the group's."""
    labels: dict[str, str] = {}
    for alert in incident.alerts.values():
        labels.update(alert.labels)
        break
    return {**labels, **incident.group_labels}


def mute(decision: Decision, rules: RuleSet, now: datetime, before: Incident | None) -> Decision:
    """Mute the decision's pages and defer its escalation when a window covers its incident now
    (``hold_pages``; ``before`` is the incident as it was)."""
    incident = decision.incident
    escalates = any(timer.kind is TimerKind.ESCALATE for timer in decision.timers)
    if incident is None or not (decision.pages or escalates):
        return decision
    window = rules.maintenance(incident.rule, incident_labels(incident), now)
    if window is None:
        return decision
    resume = None
    if incident.state is IncidentState.TRIGGERED:
        payload = {"step": incident.escalation_step, DEFERRED_BY: window.name}
        resume = TimerSpec(TimerKind.ESCALATE, window.until, payload)
    muted = TimelineEntry(
        "pages.muted",
        now,
        {
            "window": window.name,
            "until": window.until.isoformat(),
            "channels": [page.channel for page in decision.pages],
        },
    )
    return hold_pages(decision, incident, before, resume, muted)


def hold_pages(
    decision: Decision,
    incident: Incident,
    before: Incident | None,
    resume: TimerSpec | None,
    entry: TimelineEntry,
) -> Decision:
    """The decision (whose new state is ``incident``) without its pages, its escalation replaced
    by ``resume`` (the deferred step, None once the incident is no longer triggered), and
    ``entry`` on the timeline.

    ``before`` is the incident as it was: channels whose page is held leave ``paged`` (they
    get no notices about what they never heard), except those an earlier page of the same
    episode reached; a reopen starts a new episode, so its held channels all leave.
    """
    timers = tuple(t for t in decision.timers if t.kind is not TimerKind.ESCALATE)
    if resume is not None:
        timers += (resume,)
    reached: set[str] = set()
    episode = (incident.id, incident.opened_at, incident.epoch)
    if before is not None and (before.id, before.opened_at, before.epoch) == episode:
        reached = set(before.paged)
    deferred_channels = {p.channel for p in decision.pages if p.event.needs_ack} - reached
    incident = replace(
        incident, paged=tuple(c for c in incident.paged if c not in deferred_channels)
    )
    return replace(
        decision,
        incident=incident,
        pages=(),
        timers=timers,
        timeline=(*decision.timeline, entry),
    )
