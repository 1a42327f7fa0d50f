"""Every published update reaches every subscriber who wants it, in batches.

Publishing schedules a fan-out timer in its own transaction; each firing queues one batch of
subscriber messages and, when the batch was full, the timer for the next one (with the content
built by the first, so all subscribers read the same words). A notice to 100,000 subscribers is
a hundred small transactions, never one giant one, and a replica that dies mid-way leaves the
rest to the next.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from detector.domain.model import Incident, Timer, TimerKind, TimerSpec
from detector.ruleset.rules import RuleSet
from detector.store import component_status, public_incidents, subscriber_outbox, subscribers
from detector.store import timers as timer_store
from detector.store.connection import Connection
from detector.web.status_state import StoredPage, page_state
from responders.messages import MessageKind
from responders.notices.cadence import shop_time
from responders.notices.subscriber_notice import notice_payload
from responders.statuspage import documents
from responders.statuspage.model import IncidentStatus, PageInfo, PublicIncident

BATCH = 1000
POSTMORTEM = "postmortem"
"""The update key of the post-incident notice (updates are keyed by their public id)."""


async def schedule(
    connection: Connection,
    incident: Incident,
    incident_id: int,
    public_id: int,
    update: str,
    now: datetime,
) -> None:
    """Fan ``update`` of public incident ``public_id`` out to its subscribers, from now."""
    spec = TimerSpec(TimerKind.NOTICE_FANOUT, now, {"public": public_id, "update": update})
    await timer_store.add_incident_timers(connection, incident_id, incident.epoch, [spec])


async def fan_out(
    connection: Connection,
    rules: RuleSet,
    page: PageInfo,
    incident: Incident,
    timer: Timer,
    now: datetime,
) -> int:
    """Queue the next batch of the timer's update; returns how many messages were queued."""
    if timer.incident_id is None:
        return 0
    public = await public_incidents.of_incident(connection, timer.incident_id)
    if public is None:
        return 0
    update: str = timer.payload["update"]
    content = timer.payload.get("content") or await _content(
        connection, rules, page, public, update, now
    )
    ids = await subscribers.confirmed_batch(
        connection, public.components, timer.payload.get("after", 0), BATCH
    )
    key = f"notice:{public.public_id}:{update}"
    queued = await subscriber_outbox.add_many(
        connection, ids, MessageKind.SUBSCRIBER_NOTICE, content, key, now
    )
    if len(ids) == BATCH:
        payload = {**timer.payload, "after": ids[-1], "content": content}
        spec = TimerSpec(TimerKind.NOTICE_FANOUT, now, payload)
        await timer_store.add_incident_timers(connection, timer.incident_id, incident.epoch, [spec])
    return queued


async def _content(
    connection: Connection,
    rules: RuleSet,
    page: PageInfo,
    public: PublicIncident,
    update: str,
    now: datetime,
) -> dict[str, Any]:
    """The update as subscribers read it, with the incident and page as the status page shows
    them now."""
    stored = StoredPage(
        incidents=(public,),
        levels=await public_incidents.open_levels(connection),
        overrides=await component_status.overrides(connection),
    )
    state = page_state(rules, page, stored, now)
    status = documents.status_of(state)
    page_doc = {
        "id": page.id,
        "status_indicator": status["indicator"],
        "status_description": status["description"],
    }
    if update == POSTMORTEM:
        status_now, body = IncidentStatus.POSTMORTEM, public.postmortem_body or ""
        at = public.postmortem_published_at or now
    else:
        found = next(u for u in public.updates if u.public_id == update)
        status_now, body, at = found.status, found.body, found.created_at
    shown = shop_time(at, ZoneInfo(page.time_zone))
    incident = documents.incident(state, public)
    return notice_payload(page.name, page_doc, incident, status_now, body, shown)
