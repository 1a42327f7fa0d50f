"""Link a newly opened incident to the incidents of its component opened around the same time:
load them, decide with ``domain.related`` and record the links, in the caller's transaction (the
one that opens the incident)."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from detector.domain.model import Incident
from detector.domain.related import OpenedIncident, related
from detector.store import related as related_store
from detector.store.connection import Connection

log = structlog.get_logger(__name__)


async def link_opened(
    connection: Connection, incident_id: int, incident: Incident, window: timedelta, now: datetime
) -> int:
    """Link the incident just opened as ``incident_id``; returns how many it was linked to."""
    opened = OpenedIncident(
        incident_id, incident.rule, incident.title, incident.component, incident.opened_at
    )
    if opened.component is None or window <= timedelta(0):
        return 0
    candidates = await related_store.opened_between(
        connection, opened.component, opened.opened_at - window, opened.opened_at + window
    )
    others = related(opened, candidates, window)
    await related_store.link(connection, opened, others, now)
    if others:
        log.info("incident.related", incident=incident_id, related=[other.id for other in others])
    return len(others)
