"""What an incident's change means for its public notice, decided with the change itself.

An incident that opens under a rule with a ``notice`` (and no silence or maintenance window
holding it) gets a notice timer due at once; one that resolves gets a timer that takes it out
of its public incident (a person's resolution resolves it at once; alerts that cleared by
themselves put it in monitoring for the quiet period first). Both are timers in the incident's
own transaction, so the notices stage (``notice_stage``) acts on them exactly once, whichever
replica and however many restarts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from detector.domain.incidents import SYSTEM_ACTOR
from detector.domain.model import Decision, Incident, TimerKind, TimerSpec
from detector.domain.muting import incident_labels
from detector.ruleset.rules import RuleSet
from responders.notices.cadence import shop_time
from responders.notices.model import NoticeKind, NoticeValues
from responders.statuspage.model import IncidentStatus, PublicIncident

PUBLISH_AT_ONCE = "at_once"
"""A publish timer's payload key: True once the draft's veto window has run out."""


def with_notices(decision: Decision, rules: RuleSet, now: datetime) -> Decision:
    """``decision`` with the notice timers its opening or resolution asks for."""
    incident = decision.incident
    if incident is None:
        return decision
    rule = rules.rules.get(incident.rule)
    timers: tuple[TimerSpec, ...] = ()
    if decision.opened and rule is not None and rule.notice is not None:
        if rules.maintenance(incident.rule, incident_labels(incident), now) is None:
            timers = (TimerSpec(TimerKind.NOTICE_PUBLISH, now),)
    elif decision.resolved:
        by_person = incident.resolved_by != SYSTEM_ACTOR
        timers = (
            TimerSpec(TimerKind.NOTICE_QUIET, now, {"by": by_person and incident.resolved_by}),
        )
    if not timers:
        return decision
    return replace(decision, timers=(*decision.timers, *timers))


def notice_values(
    rules: RuleSet,
    zone: ZoneInfo,
    incident: Incident,
    status: IncidentStatus,
    now: datetime,
    *,
    public: PublicIncident | None = None,
    next_update_at: datetime | None = None,
    eta: datetime | None = None,
    message: str = "",
    postmortem: dict[str, str] | None = None,
) -> NoticeValues:
    """What a template reads for ``incident``'s notice, times written in the shop's zone."""
    rule = rules.rules.get(incident.rule)
    names = public.components if public is not None else (incident.component or "",)
    components = tuple(
        rules.components[name].display_name if name in rules.components else name for name in names
    )
    started = public.created_at if public is not None else incident.opened_at
    resolved = public.resolved_at if public is not None and public.resolved_at else now
    notice = rule.notice if rule is not None else None
    return NoticeValues(
        components=components,
        status=status,
        started_at=shop_time(started, zone, now),
        impact=notice.impact if notice else "",
        still_works=notice.still_works if notice else "",
        message=message,
        next_update_at=None if next_update_at is None else shop_time(next_update_at, zone, now),
        eta=None if eta is None else shop_time(eta, zone, now),
        resolved_at=shop_time(resolved, zone, now) if status.is_final else None,
        postmortem=postmortem or {},
    )


def notice_name(rules: RuleSet, incident: Incident) -> str:
    """The public incident's name: the rule's notice title, else "Problems with <component>"."""
    rule = rules.rules.get(incident.rule)
    if rule is not None and rule.notice is not None and rule.notice.title:
        return rule.notice.title
    component = rules.components.get(incident.component or "")
    return f"Problems with {component.display_name if component else incident.component}"


def render(rules: RuleSet, kind: NoticeKind, values: NoticeValues) -> str:
    """The notice text from the rules' templates."""
    return rules.notice_templates.render(kind, values)
