"""Which incidents are related: those of one customer-facing component opened close together.

One outage tends to open several incidents at once (the database pool alert, the checkout error
rate, the failing checkout journey), each from its own rule. Linking them shows whoever looks
at one that the others exist. Only a new incident is linked, at the moment it opens; a reopened
one keeps the links of its first episode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.domain.model import TimelineEntry

RELATED_KIND = "incident.related"
DEFAULT_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class OpenedIncident:
    """What a link needs to know of an incident."""

    id: int
    rule: str
    title: str
    component: str | None
    opened_at: datetime


def related(
    opened: OpenedIncident, others: Iterable[OpenedIncident], window: timedelta
) -> list[OpenedIncident]:
    """The others of the same component opened within ``window`` of ``opened`` (either side),
    oldest first. Nothing without a component (it names no shared customer impact), and
    nothing when the window is zero (linking is off)."""
    if opened.component is None or window <= timedelta(0):
        return []
    found = [
        other
        for other in others
        if other.id != opened.id
        and other.component == opened.component
        and abs(other.opened_at - opened.opened_at) <= window
    ]
    return sorted(found, key=lambda other: (other.opened_at, other.id))


def link_entries(
    opened: OpenedIncident, others: Iterable[OpenedIncident], now: datetime
) -> list[tuple[int, TimelineEntry]]:
    """The timeline line each side of each link gets: (incident id, entry naming the other)."""
    entries = []
    for other in others:
        entries.append((opened.id, _entry(other, now)))
        entries.append((other.id, _entry(opened, now)))
    return entries


def _entry(other: OpenedIncident, now: datetime) -> TimelineEntry:
    return TimelineEntry(
        RELATED_KIND,
        now,
        {
            "incident": other.id,
            "rule": other.rule,
            "title": other.title,
            "component": other.component,
        },
    )
