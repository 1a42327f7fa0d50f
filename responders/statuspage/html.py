"""The status page in HTML: readable on a phone, complete without JavaScript, refreshing
itself, and never telling a status by colour alone (each has an icon and words).

Rendered from a :class:`PageState` through an autoescaped, sandboxed Jinja2 template, so text
from people (incident names, update bodies) can never become markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from importlib import resources
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from jinja2.sandbox import SandboxedEnvironment

from responders.statuspage.documents import status_of, timestamp
from responders.statuspage.model import (
    ComponentLevel,
    Impact,
    MaintenanceStatus,
    PageState,
    PublicIncident,
)

REFRESH_SECONDS = 60
HISTORY_DAYS = 90
LEVEL_WORDS = {
    ComponentLevel.OPERATIONAL: ("\u2714", "Operational"),
    ComponentLevel.DEGRADED_PERFORMANCE: ("\u25d0", "Degraded performance"),
    ComponentLevel.PARTIAL_OUTAGE: ("\u25b2", "Partial outage"),
    ComponentLevel.MAJOR_OUTAGE: ("\u2716", "Major outage"),
    ComponentLevel.UNDER_MAINTENANCE: ("\u2692", "Under maintenance"),
}
IMPACT_WORDS = {
    Impact.NONE: ("\u2139", "No impact on service"),
    Impact.MINOR: ("\u25d0", "Minor impact"),
    Impact.MAJOR: ("\u25b2", "Major impact"),
    Impact.CRITICAL: ("\u2716", "Critical impact"),
}
MAINTENANCE_WORDS = {
    MaintenanceStatus.SCHEDULED: "Scheduled",
    MaintenanceStatus.IN_PROGRESS: "In progress",
    MaintenanceStatus.COMPLETED: "Completed",
}

_ENVIRONMENT = SandboxedEnvironment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_TEMPLATE = _ENVIRONMENT.from_string(
    (resources.files("responders.statuspage") / "templates" / "status.html").read_text("utf-8")
)


def render(state: PageState) -> str:
    """The whole page."""
    return _TEMPLATE.render(view(state))


def view(state: PageState) -> dict[str, Any]:
    """What the template shows, already in words and the page's local times."""
    zone = ZoneInfo(state.page.time_zone)
    status = status_of(state)
    overall_icon = IMPACT_WORDS[Impact(status["indicator"])][0]
    names = {c.name: c.display_name for c in state.components}
    since = state.now - timedelta(days=HISTORY_DAYS)
    past = [i for i in state.incidents if not i.is_open and i.created_at >= since]
    return {
        "page": state.page,
        "refresh_seconds": REFRESH_SECONDS,
        "history_days": HISTORY_DAYS,
        "status": {**status, "icon": "\u2714" if status["indicator"] == "none" else overall_icon},
        "components": [
            {
                "id": c.id,
                "name": c.display_name,
                "description": c.description,
                "status": c.status.value,
                "icon": LEVEL_WORDS[c.status][0],
                "words": LEVEL_WORDS[c.status][1],
            }
            for c in state.components
        ],
        "active": [_incident(i, names, zone) for i in state.incidents if i.is_open],
        "maintenances": [
            {
                "id": m.public_id,
                "name": m.name,
                "body": m.body,
                "words": MAINTENANCE_WORDS[m.status(state.now)],
                "affects": ", ".join(names[c] for c in m.components if c in names),
                **_when("starts", m.scheduled_for, zone),
                **_when("ends", m.scheduled_until, zone),
            }
            for m in state.maintenances
            if m.status(state.now) is not MaintenanceStatus.COMPLETED
        ],
        "history": _by_day(past, names, zone),
        **_when("updated", state.updated_at, zone),
    }


def _incident(incident: PublicIncident, names: dict[str, str], zone: ZoneInfo) -> dict[str, Any]:
    icon, words = IMPACT_WORDS[incident.impact]
    return {
        "id": incident.public_id,
        "name": incident.name,
        "impact": incident.impact.value,
        "icon": icon,
        "impact_words": words,
        "affects": ", ".join(names[c] for c in incident.components if c in names),
        "updates": [
            {
                "status_words": u.status.value.capitalize(),
                "body": u.body,
                **_when("at", u.display_at, zone),
                **(_when("next", u.next_update_at, zone) if u.next_update_at else {}),
            }
            for u in incident.updates
        ],
        "postmortem": [p for p in (incident.postmortem_body or "").split("\n\n") if p.strip()],
    }


def _by_day(
    incidents: Iterable[PublicIncident], names: dict[str, str], zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Past incidents under the local day they began, newest day first."""

    def day(incident: PublicIncident) -> str:
        return incident.created_at.astimezone(zone).strftime("%-d %B %Y")

    return [
        {"label": label, "incidents": [_incident(i, names, zone) for i in group]}
        for label, group in groupby(incidents, key=day)
    ]


def _when(key: str, at: datetime, zone: ZoneInfo) -> dict[str, str]:
    """A time as people read it (``2 Mar 2026, 14:31 CET``) and as machines do."""
    local = at.astimezone(zone)
    return {
        key: f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}",
        f"{key}_iso": timestamp(at, str(zone)),
    }
