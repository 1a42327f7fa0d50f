"""When customers hear from us next, and whether that promise was kept.

Every non-final public update promises the next one (``next_update_at``); before it is due the
commander is reminded, and at the due time a holding update keeps the promise if nobody wrote
one. An update published after its promised time is late: the broken-promise count.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from responders.channels.recipients import contact_method, parse_contact


class Punctuality(StrEnum):
    """Whether an update came by the time the previous one promised (the metric's label)."""

    ON_TIME = "on_time"
    LATE = "late"


def next_update_at(
    published_at: datetime, every: timedelta, eta: datetime | None = None
) -> datetime:
    """The promised time of the next update: one cadence after this one, or the ETA when that
    comes sooner (customers hear at the ETA whether it held)."""
    due = published_at + every
    return min(due, eta) if eta is not None and eta > published_at else due


def reminder_at(due: datetime, remind_before: timedelta, published_at: datetime) -> datetime:
    """When the commander is reminded to write the update due at ``due`` (never before the
    update that made the promise)."""
    return max(due - remind_before, published_at)


def punctuality(promised: datetime | None, published_at: datetime) -> Punctuality:
    """On time unless published after the promised time."""
    if promised is not None and published_at > promised:
        return Punctuality.LATE
    return Punctuality.ON_TIME


def commander(acknowledged_by: str | None, on_call: str | None = None) -> str | None:
    """Who answers for the public side of an incident: whoever acknowledged it, else the
    person on call for it (None when nobody is known yet)."""
    return acknowledged_by or on_call


@dataclass(frozen=True, slots=True)
class Reminded:
    """Who answers for an incident's public side, and the outbox keys that remind them."""

    commander: str | None
    keys: tuple[str, ...]


def reminded(
    acknowledged_by: str | None, paged: Sequence[str], people: Collection[str]
) -> Reminded:
    """The commander is whoever acknowledged, else the person paged last (the one on call for
    the incident now). A commander the on-call files know is reminded at their first contact
    method, beside the shared channels that were paged; anyone else (a name typed into an ack
    form, or nobody yet) is reminded through everything that was paged."""
    paged_people = [address.person for key in paged if (address := parse_contact(key))]
    name = commander(acknowledged_by, paged_people[-1] if paged_people else None)
    if name is None or name not in people:
        return Reminded(name, tuple(paged))
    shared = tuple(key for key in paged if parse_contact(key) is None)
    return Reminded(name, (contact_method(name), *shared))


def shop_time(moment: datetime, zone: ZoneInfo, reference: datetime | None = None) -> str:
    """``14:30 CET``, with the day when it is not the day of ``reference``."""
    local = moment.astimezone(zone)
    if reference is not None and reference.astimezone(zone).date() != local.date():
        return local.strftime("%a %d %b %H:%M %Z")
    return local.strftime("%H:%M %Z")


def parse_eta(text: str, zone: ZoneInfo, now: datetime) -> datetime:
    """``14:30`` (the next such time in the shop's zone) or an ISO-8601 time; ValueError
    otherwise, or when the time has passed."""
    try:
        clock = time.fromisoformat(text.strip()) if len(text.strip()) == 5 else None
    except ValueError:
        clock = None
    if clock is None:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
    else:
        local = now.astimezone(zone)
        moment = datetime.combine(local.date(), clock, tzinfo=zone)
        if moment < local:
            moment += timedelta(days=1)
    if moment <= now:
        raise ValueError(f"{text!r} has passed")
    return moment
