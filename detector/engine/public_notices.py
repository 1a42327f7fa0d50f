"""Publishing to the public incident, and the promise every non-final update makes.

Shared by the notices stage (first notices, holding updates, resolutions) and by people (their
updates, drafts, post-incident notices). Every publication that promises a next update schedules
the reminder before it and the holding update at it, in the same transaction; a later update
makes those timers stale (their ``promised`` time is no longer the incident's), so each promise
is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from detector.domain.model import Incident, TimerKind, TimerSpec
from detector.engine import notice_fanout
from detector.engine.notices import notice_name, notice_values, render
from detector.ruleset.rules import RuleSet
from detector.store import public_incidents, timers
from detector.store.connection import Connection
from responders.notices.cadence import Punctuality, next_update_at, punctuality, reminder_at
from responders.notices.model import NoticeKind
from responders.statuspage.model import IncidentStatus, PublicIncident, PublicUpdate


@dataclass(frozen=True, slots=True)
class Published:
    """An update that went out, and whether it kept the previous update's promise."""

    update: PublicUpdate
    punctuality: Punctuality


def promised(public: PublicIncident) -> datetime | None:
    """The next update time the latest update promised (None once final)."""
    return public.updates[0].next_update_at if public.updates else None


async def keep_promise(
    connection: Connection,
    rules: RuleSet,
    incident: Incident,
    incident_id: int,
    public_id: int,
    due: datetime,
    now: datetime,
) -> None:
    """Schedule the reminder before ``due`` and the holding update at it."""
    payload = {"public": public_id, "promised": due.isoformat()}
    remind = reminder_at(due, rules.notice_policy.remind_before, now)
    specs = [
        TimerSpec(TimerKind.NOTICE_REMINDER, remind, payload),
        TimerSpec(TimerKind.NOTICE_HOLDING, due, payload),
    ]
    await timers.add_incident_timers(connection, incident_id, incident.epoch, specs)


async def publish_update(
    connection: Connection,
    rules: RuleSet,
    zone: ZoneInfo,
    incident: Incident,
    incident_id: int,
    public: PublicIncident,
    status: IncidentStatus,
    now: datetime,
    *,
    kind: NoticeKind = NoticeKind.UPDATE,
    message: str = "",
    eta: datetime | None = None,
) -> Published:
    """Write and publish one update to ``public`` and, unless it is final, promise the next."""
    due = None
    if not status.is_final:
        due = next_update_at(now, rules.notice_policy.every(incident.severity), eta)
    values = notice_values(
        rules,
        zone,
        incident,
        status,
        now,
        public=public,
        next_update_at=due,
        eta=eta,
        message=message,
    )
    body = render(rules, kind, values)
    kept = punctuality(promised(public), now)
    update = await public_incidents.add_update(connection, public.id, status, body, due, now)
    await notice_fanout.schedule(
        connection, incident, incident_id, public.id, update.public_id, now
    )
    if due is not None:
        await keep_promise(connection, rules, incident, incident_id, public.id, due, now)
    return Published(update, kept)


async def publish_first(
    connection: Connection,
    rules: RuleSet,
    incident: Incident,
    incident_id: int,
    first: public_incidents.FirstNotice,
    now: datetime,
) -> public_incidents.Joined:
    """Open the component's public incident with ``first`` (or join the one already open,
    publishing nothing), and promise the next update when it opened."""
    rule = rules.rules[incident.rule]
    component = incident.component or ""
    joined = await public_incidents.open_or_join(
        connection, incident_id, component, rule.outage_level, first, now
    )
    if joined.opened:
        first_update = joined.incident.updates[-1].public_id
        await notice_fanout.schedule(
            connection, incident, incident_id, joined.incident.id, first_update, now
        )
    if joined.opened and first.next_update_at is not None:
        await keep_promise(
            connection, rules, incident, incident_id, joined.incident.id, first.next_update_at, now
        )
    return joined


def first_notice(
    rules: RuleSet, zone: ZoneInfo, incident: Incident, now: datetime
) -> public_incidents.FirstNotice:
    """The first notice as the templates write it now, promising the next update one cadence
    from now."""
    due = next_update_at(now, rules.notice_policy.every(incident.severity))
    values = notice_values(
        rules, zone, incident, IncidentStatus.INVESTIGATING, now, next_update_at=due
    )
    body = render(rules, NoticeKind.FIRST_NOTICE, values)
    return public_incidents.FirstNotice(notice_name(rules, incident), body, due)
