"""Shifts as an iCalendar (RFC 5545) feed, for a schedule or for one person across schedules.

Each shift is one VEVENT with its times in UTC. Its UID is derived from the schedule, the
person and the start, so a calendar app that re-reads the feed updates the events it already
has instead of piling up copies; a shift whose end moves (an override cut it short) keeps its
UID. For UIDs to stay stable, pass shifts with their real starts (as
:func:`~responders.oncall.resolver.next_handoffs` gives them), not ones cut at "now".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from icalendar import Calendar, Event

from responders.oncall.model import Shift

PRODUCT = "-//Stormwatch//On-call schedules//EN"

_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:stormwatch:oncall-shift")


def shifts_calendar(
    name: str, shifts: Sequence[Shift], people: Mapping[str, str], now: datetime
) -> bytes:
    """A VCALENDAR named ``name`` with one event per shift, sorted by start; ``people`` maps
    a person's id to the name shown (the id itself when missing); ``now`` is the DTSTAMP."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    stamp = now.astimezone(UTC)
    for shift in sorted(shifts, key=lambda s: (s.start, s.schedule, s.person)):
        calendar.add_component(_event(shift, people.get(shift.person, shift.person), stamp))
    feed: bytes = calendar.to_ical()
    return feed


def shift_uid(shift: Shift) -> str:
    """The event's UID: the same for the same schedule, person and start."""
    start = shift.start.astimezone(UTC).isoformat()
    key = uuid.uuid5(_UID_NAMESPACE, f"{shift.schedule}\n{shift.person}\n{start}")
    return f"{key}@stormwatch"


def _event(shift: Shift, display_name: str, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", shift_uid(shift))
    event.add("dtstamp", stamp)
    event.add("dtstart", shift.start.astimezone(UTC))
    event.add("dtend", shift.end.astimezone(UTC))
    event.add("summary", _summary(shift, display_name))
    event.add("transp", "TRANSPARENT")  # being on call does not make anyone busy
    return event


def _summary(shift: Shift, display_name: str) -> str:
    if shift.schedule:
        return f"On call: {display_name} ({shift.schedule})"
    return f"On call: {display_name}"
