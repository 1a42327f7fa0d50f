"""Statuspage v2 JSON documents, built from a :class:`PageState`, with every key Statuspage
sends (nulls, never omissions: client structs in the wild fail on a missing key).

Timestamps are ISO 8601 with milliseconds in the page's time zone, as Statuspage writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from responders.statuspage.levels import indicator
from responders.statuspage.model import (
    Component,
    Maintenance,
    MaintenanceStatus,
    PageState,
    PublicIncident,
    PublicUpdate,
)

Document = dict[str, Any]
RECENT_INCIDENTS = 50
"""How many incidents ``incidents.json`` lists, as Statuspage does."""


def timestamp(at: datetime, zone: str) -> str:
    """``2026-03-02T14:31:05.120Z`` (UTC) or ``…+01:00`` in the page's zone."""
    text = at.astimezone(ZoneInfo(zone)).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def summary(state: PageState) -> Document:
    """``/api/v2/summary.json``: page, status, components, unresolved incidents, and upcoming
    and running maintenances."""
    return {
        **_page(state),
        "status": status_of(state),
        "components": [component(state, c) for c in state.components],
        "incidents": [incident(state, i) for i in state.incidents if i.is_open],
        "scheduled_maintenances": [
            maintenance(state, m)
            for m in state.maintenances
            if m.status(state.now) is not MaintenanceStatus.COMPLETED
        ],
    }


def status(state: PageState) -> Document:
    """``/api/v2/status.json``."""
    return {**_page(state), "status": status_of(state)}


def components(state: PageState) -> Document:
    """``/api/v2/components.json``."""
    return {**_page(state), "components": [component(state, c) for c in state.components]}


def incidents(state: PageState) -> Document:
    """``/api/v2/incidents.json``: the most recent, resolved ones included."""
    recent = state.incidents[:RECENT_INCIDENTS]
    return {**_page(state), "incidents": [incident(state, i) for i in recent]}


def unresolved(state: PageState) -> Document:
    """``/api/v2/incidents/unresolved.json``."""
    return {**_page(state), "incidents": [incident(state, i) for i in state.incidents if i.is_open]}


def maintenances(state: PageState, *wanted: MaintenanceStatus) -> Document:
    """``/api/v2/scheduled-maintenances.json`` (all), ``…/upcoming.json`` (scheduled) and
    ``…/active.json`` (in progress)."""
    chosen = [m for m in state.maintenances if not wanted or m.status(state.now) in wanted]
    return {**_page(state), "scheduled_maintenances": [maintenance(state, m) for m in chosen]}


def banner(state: PageState) -> Document:
    """A small document a storefront polls to show a banner: the page status, what is open
    now (with its latest word), and maintenance running or coming."""
    zone = state.page.time_zone
    return {
        "status": status_of(state),
        "url": state.page.url,
        "updated_at": timestamp(state.updated_at, zone),
        "incidents": [
            {
                "name": i.name,
                "status": i.status.value,
                "impact": i.impact.value,
                "shortlink": shortlink(state, i.public_id),
                "updated_at": timestamp(i.updated_at, zone),
                "latest_update": i.updates[0].body if i.updates else None,
            }
            for i in state.incidents
            if i.is_open
        ],
        "maintenances": [
            {
                "name": m.name,
                "status": m.status(state.now).value,
                "scheduled_for": timestamp(m.scheduled_for, zone),
                "scheduled_until": timestamp(m.scheduled_until, zone),
            }
            for m in state.maintenances
            if m.status(state.now) is not MaintenanceStatus.COMPLETED
        ],
    }


def status_of(state: PageState) -> Document:
    """``{"indicator": ..., "description": ...}``."""
    levels = {c.name: c.status for c in state.components}
    found = indicator(levels, [i for i in state.incidents if i.is_open])
    return {"indicator": found.indicator.value, "description": found.description}


def shortlink(state: PageState, public_id: str) -> str:
    """Where a customer reads one incident or maintenance on the HTML page."""
    return f"{state.page.url.rstrip('/')}/status#{public_id}"


def _page(state: PageState) -> Document:
    page = state.page
    return {
        "page": {
            "id": page.id,
            "name": page.name,
            "url": page.url,
            "time_zone": page.time_zone,
            "updated_at": timestamp(state.updated_at, page.time_zone),
        }
    }


def component(state: PageState, shown: Component) -> Document:
    """One component object."""
    changed = timestamp(shown.since or state.updated_at, state.page.time_zone)
    return {
        "id": shown.id,
        "name": shown.display_name,
        "status": shown.status.value,
        "created_at": changed,
        "updated_at": changed,
        "position": shown.position,
        "description": shown.description or None,
        "showcase": True,
        "start_date": None,
        "group_id": None,
        "page_id": state.page.id,
        "group": False,
        "only_show_if_degraded": False,
    }


def incident(state: PageState, public: PublicIncident) -> Document:
    """One incident object, its updates newest first."""
    zone = state.page.time_zone
    named = {c.name: c for c in state.components}

    def optional(at: datetime | None) -> str | None:
        return None if at is None else timestamp(at, zone)

    return {
        "id": public.public_id,
        "name": public.name,
        "status": public.status.value,
        "created_at": timestamp(public.created_at, zone),
        "updated_at": timestamp(public.updated_at, zone),
        "monitoring_at": optional(public.monitoring_at),
        "resolved_at": optional(public.resolved_at),
        "impact": public.impact.value,
        "shortlink": shortlink(state, public.public_id),
        "started_at": timestamp(public.created_at, zone),
        "page_id": state.page.id,
        "incident_updates": [_update(state, public, u, named) for u in public.updates],
        "components": [component(state, named[c]) for c in public.components if c in named],
    }


def _update(
    state: PageState, public: PublicIncident, update: PublicUpdate, named: dict[str, Component]
) -> Document:
    at = timestamp(update.created_at, state.page.time_zone)
    affected = [
        {
            "code": named[a.component].id,
            "name": named[a.component].display_name,
            "old_status": a.old_status.value,
            "new_status": a.new_status.value,
        }
        for a in update.affected_components
        if a.component in named
    ]
    return {
        "id": update.public_id,
        "status": update.status.value,
        "body": update.body,
        "incident_id": public.public_id,
        "created_at": at,
        "updated_at": at,
        "display_at": timestamp(update.display_at, state.page.time_zone),
        "affected_components": affected or None,
        "deliver_notifications": True,
        "custom_tweet": None,
        "tweet_id": None,
    }


def maintenance(state: PageState, window: Maintenance) -> Document:
    """One scheduled maintenance object (an incident object plus its schedule)."""
    zone = state.page.time_zone
    now = window.status(state.now)
    named = {c.name: c for c in state.components}
    created = timestamp(window.scheduled_for, zone)
    ended = timestamp(window.scheduled_until, zone)
    done = now is MaintenanceStatus.COMPLETED
    update_at = ended if done else created
    return {
        "id": window.public_id,
        "name": window.name,
        "status": now.value,
        "created_at": created,
        "updated_at": update_at,
        "monitoring_at": None,
        "resolved_at": ended if done else None,
        "impact": "maintenance",
        "shortlink": shortlink(state, window.public_id),
        "started_at": created,
        "page_id": state.page.id,
        "incident_updates": [
            {
                "id": f"{window.public_id}-{now.value}",
                "status": now.value,
                "body": window.body,
                "incident_id": window.public_id,
                "created_at": update_at,
                "updated_at": update_at,
                "display_at": update_at,
                "affected_components": None,
                "deliver_notifications": False,
                "custom_tweet": None,
                "tweet_id": None,
            }
        ],
        "components": [component(state, named[c]) for c in window.components if c in named],
        "scheduled_for": created,
        "scheduled_until": ended,
    }
