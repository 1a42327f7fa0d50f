"""What people do with notices: veto, edit or publish a first-notice draft, post an update with
a revised ETA, publish the post-incident notice. Each is one locked transaction; customer text
is checked for jargon before anything is written."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from detector.domain.model import Incident
from detector.engine import notice_fanout
from detector.engine.notice_stage import FiredNotice, publish_draft
from detector.engine.notices import notice_values, render
from detector.engine.public_notices import Published, publish_update
from detector.ruleset.rules import RuleSet
from detector.store import incidents as store
from detector.store import notice_drafts, public_incidents
from detector.store.connection import Connection, Pool
from detector.store.timeline import add_timeline
from responders.notices.lint import Vocabulary, jargon
from responders.notices.model import NoticeKind
from responders.statuspage.model import IncidentStatus, PublicIncident

POSTMORTEM_FIELDS = ("impact", "customer_action", "compensation", "prevention")


class NoticeRefused(Exception):
    """The request cannot be done; ``status`` and ``field`` for the API's answer."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.field = field
        self.reason = reason


def check_text(rules: RuleSet, field: str, text: str) -> None:
    """Refuse customer text with internal jargon, naming the words."""
    found = jargon(text, Vocabulary(words=rules.notice_policy.jargon))
    if found:
        raise NoticeRefused(422, field, f"internal jargon: {', '.join(found)}")


async def _locked(connection: Connection, incident_id: int) -> Incident:
    incident = await store.lock_incident(connection, incident_id)
    if incident is None:
        raise NoticeRefused(404, "id", "no such incident")
    return incident


async def _pending_draft(connection: Connection, incident_id: int) -> notice_drafts.Draft:
    draft = await notice_drafts.lock(connection, incident_id)
    if draft is None or not draft.pending:
        raise NoticeRefused(409, "id", "no first notice waiting (published, vetoed or none)")
    return draft


async def show(pool: Pool, incident_id: int) -> dict[str, object]:
    """The incident's first-notice draft (if any) and its public incident (if any)."""
    async with pool.acquire() as connection:
        draft = await notice_drafts.get(connection, incident_id)
        public = await public_incidents.of_incident(connection, incident_id)
    shown: dict[str, object] = {"id": incident_id, "draft": None, "public_incident": None}
    if draft is not None:
        state = "published" if draft.published_at else "vetoed" if draft.vetoed_by else "waiting"
        shown["draft"] = {
            "state": state,
            "component": draft.component,
            "component_status": draft.component_status,
            "name": draft.name,
            "body": draft.body,
            "publish_at": draft.publish_at.isoformat() if draft.publish_at else None,
            "edited_by": draft.edited_by,
            "vetoed_by": draft.vetoed_by,
        }
    if public is not None:
        promise = public.updates[0].next_update_at if public.updates else None
        shown["public_incident"] = {
            "id": public.public_id,
            "name": public.name,
            "status": public.status.value,
            "next_update_at": promise.isoformat() if promise else None,
        }
    return shown


async def veto(pool: Pool, incident_id: int, by: str, now: datetime) -> None:
    """Stop the incident's waiting first notice."""
    async with pool.acquire() as connection, connection.transaction():
        await _locked(connection, incident_id)
        await _pending_draft(connection, incident_id)
        await notice_drafts.veto(connection, incident_id, by, now)
        await add_timeline(connection, incident_id, [("notice.vetoed", now, {"by": by})])


async def edit(
    pool: Pool,
    rules: RuleSet,
    incident_id: int,
    name: str | None,
    body: str,
    by: str,
    now: datetime,
) -> None:
    """Replace the waiting first notice's words (it still goes out when its window ends)."""
    check_text(rules, "body", body)
    check_text(rules, "name", name or "")
    async with pool.acquire() as connection, connection.transaction():
        await _locked(connection, incident_id)
        draft = await _pending_draft(connection, incident_id)
        await notice_drafts.edit(connection, incident_id, name or draft.name, body, by, now)
        await add_timeline(connection, incident_id, [("notice.edited", now, {"by": by})])


async def publish(
    pool: Pool, rules: RuleSet, zone: ZoneInfo, incident_id: int, now: datetime
) -> FiredNotice:
    """Publish the waiting first notice now."""
    async with pool.acquire() as connection, connection.transaction():
        incident = await _locked(connection, incident_id)
        await _pending_draft(connection, incident_id)
        fired = await publish_draft(connection, rules, zone, incident, incident_id, None, now)
        await add_timeline(connection, incident_id, [(f"notice.{fired.outcome}", now, {})])
        return fired


async def post_update(
    pool: Pool,
    rules: RuleSet,
    zone: ZoneInfo,
    incident_id: int,
    status: IncidentStatus,
    message: str,
    eta: datetime | None,
    now: datetime,
) -> Published:
    """A person's update to the incident's public incident (resolved resolves it)."""
    if status is IncidentStatus.POSTMORTEM:
        raise NoticeRefused(400, "status", "publish the post-incident notice with postmortem")
    check_text(rules, "message", message)
    async with pool.acquire() as connection, connection.transaction():
        incident = await _locked(connection, incident_id)
        public = await _open_public(connection, incident_id)
        kind = NoticeKind.RESOLUTION if status is IncidentStatus.RESOLVED else NoticeKind.UPDATE
        published = await publish_update(
            connection,
            rules,
            zone,
            incident,
            incident_id,
            public,
            status,
            now,
            kind=kind,
            message=message,
            eta=eta,
        )
        detail = {"status": status.value, "punctuality": published.punctuality.value}
        await add_timeline(connection, incident_id, [("notice.updated", now, detail)])
        return published


async def _open_public(connection: Connection, incident_id: int) -> PublicIncident:
    public = await public_incidents.of_incident(connection, incident_id)
    if public is None or not public.is_open:
        raise NoticeRefused(409, "id", "the incident has no open public incident")
    return public


async def post_postmortem(
    pool: Pool,
    rules: RuleSet,
    zone: ZoneInfo,
    incident_id: int,
    fields: dict[str, str],
    now: datetime,
) -> PublicIncident:
    """Publish the post-incident notice on the incident's resolved public incident."""
    for name, text in fields.items():
        check_text(rules, name, text)
    async with pool.acquire() as connection, connection.transaction():
        incident = await _locked(connection, incident_id)
        public = await public_incidents.of_incident(connection, incident_id)
        if public is None or public.is_open:
            raise NoticeRefused(409, "id", "the post-incident notice follows the resolution")
        values = notice_values(
            rules, zone, incident, IncidentStatus.POSTMORTEM, now, public=public, postmortem=fields
        )
        body = render(rules, NoticeKind.POSTMORTEM, values)
        published = await public_incidents.publish_postmortem(connection, public.id, body, now)
        await notice_fanout.schedule(
            connection, incident, incident_id, public.id, notice_fanout.POSTMORTEM, now
        )
        await add_timeline(connection, incident_id, [("notice.postmortem", now, {})])
        return published
