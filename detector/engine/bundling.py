"""Storm bundling: how the delivery stage's claimed messages go out.

During a storm one person can be called to act on dozens of incidents within a minute, and a
phone buzzing thirty times helps nobody triage. Past ``limit`` pages sent one by one to a person
within ``window``, the rest of that person's calls to act go out as one digest per contact
method, each incident with its own links. The count comes from the outbox itself (pages sent
one by one to any of the person's contact methods), and is taken and acted on under a
per-person advisory lock, so replicas sharing the database share one allowance and a restart
forgets nothing. Which way a page goes out is recorded with it: a page that fails is retried the
same way (a failed digest's pages are bundled again on their next attempt). Channels that do not
deliver digests (PagerDuty, which groups by itself) get every page one by one, and pages to
shared channels are never bundled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from detector.ruleset.live import Routes
from detector.store import locks, outbox
from detector.store.connection import Pool
from detector.store.outbox import OutboxMessage
from detector.store.pooled import pooled
from responders.channels.recipients import parse_contact
from responders.messages import MessageKind, PageEvent

_CALLS_TO_ACT = frozenset(event.value for event in PageEvent if event.needs_ack)


@dataclass(frozen=True, slots=True)
class Bundling:
    """At most ``limit`` calls to act one by one per person within ``window``."""

    limit: int = 5
    window: timedelta = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Send:
    """One send: a single message, or (``digest``) pages to one contact method bundled."""

    messages: tuple[OutboxMessage, ...]
    digest: bool = False


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The sends for one claim, and how many of its pages were bundled for the first time."""

    sends: tuple[Send, ...]
    bundled: int = 0


def bundled_for(message: OutboxMessage, routes: Routes) -> str | None:
    """The person ``message`` may be bundled for: a call to act to one of their contact methods
    whose channel delivers digests (None: it goes out on its own)."""
    if message.kind != MessageKind.PAGE or message.payload.get("event") not in _CALLS_TO_ACT:
        return None
    address = parse_contact(message.channel)
    channel = routes.channels.get(message.channel)
    if address is None or channel is None or MessageKind.DIGEST not in channel.kinds:
        return None
    return address.person


def split(
    pages: Sequence[OutboxMessage], sent_alone: int, limit: int
) -> tuple[list[OutboxMessage], list[OutboxMessage]]:
    """One person's pages as (one by one, bundled), given how many went out one by one within
    the window. A page decided earlier keeps its way; the undecided, oldest first, take what is
    left of the allowance, and the rest are bundled (returned marked so)."""
    allowance = max(limit - sent_alone, 0)
    alone: list[OutboxMessage] = []
    bundled: list[OutboxMessage] = []
    for page in sorted(pages, key=lambda message: message.id):
        if page.dispatched_at is not None:
            (bundled if page.bundled else alone).append(page)
        elif allowance > 0:
            allowance -= 1
            alone.append(page)
        else:
            bundled.append(replace(page, bundled=True))
    return alone, bundled


def digests(bundled: Sequence[OutboxMessage]) -> list[Send]:
    """One digest per contact method, its pages in the order they were queued."""
    by_channel: dict[str, list[OutboxMessage]] = defaultdict(list)
    for page in bundled:
        by_channel[page.channel].append(page)
    return [Send(tuple(pages), digest=True) for pages in by_channel.values()]


async def dispatch(
    pool: Pool,
    routes: Routes,
    claimed: Sequence[OutboxMessage],
    bundling: Bundling,
    now: datetime,
) -> Dispatch:
    """Decide, person by person, which claimed pages go out one by one and which bundled, and
    record it; everything else is one send per message."""
    people: dict[str, list[OutboxMessage]] = defaultdict(list)
    sends: list[Send] = []
    for message in claimed:
        person = bundled_for(message, routes)
        if person is None:
            sends.append(Send((message,)))
        else:
            people[person].append(message)
    newly_bundled = 0
    for person, pages in people.items():
        keys = routes.rules.contact_keys(person)
        async with pooled(pool) as connection, connection.transaction():
            await locks.hold_keyed(connection, locks.AdvisoryLock.PAGE_BUNDLING, person)
            sent = await outbox.sent_alone_since(connection, keys, now - bundling.window)
            alone, bundled = split(pages, sent, bundling.limit)
            fresh_alone = [page.id for page in alone if page.dispatched_at is None]
            fresh_bundled = [page.id for page in bundled if page.dispatched_at is None]
            await outbox.mark_dispatched(connection, fresh_alone, fresh_bundled, now)
        newly_bundled += len(fresh_bundled)
        sends += [Send((page,)) for page in alone]
        sends += digests(bundled)
    return Dispatch(tuple(sends), newly_bundled)
