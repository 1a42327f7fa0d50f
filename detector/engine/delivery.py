"""Engine stage 3: deliver due outbox messages through their channels.

Messages are claimed with a short lease (``leases.TERM``) and sent concurrently outside any
transaction; a heartbeat renews the leases of the sends still in flight, and each send's outcome
is recorded as soon as that send ends. A replica that dies therefore leaves behind only the
sends it had in flight and the outcomes it had not yet recorded, and another replica retries
those once their lease runs out, a few seconds later (``docs/operations.md``, *Delivery after a
crash*). An outcome the database cannot take (it is unreachable) is kept and recorded at the
start of the next run, while the lease is still this replica's.

A page that ends dead on a person's contact method falls through to their next one in the
transaction that records it; during a storm a person's calls to act past a limit go out bundled
(``bundling``).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import structlog

from detector.engine.bundling import Bundling, Send, dispatch
from detector.engine.leases import TERM, LeaseKeeper, Renew
from detector.engine.stage import CycleContext, Lane
from detector.ruleset.channel_specs import RetrySpec
from detector.ruleset.live import Routes
from detector.ruleset.rules import RuleSet
from detector.service.metrics import Metrics
from detector.store import outbox
from detector.store.connection import Connection, Pool
from detector.store.outbox import OutboxMessage
from detector.store.pooled import connection_failed, pooled
from responders.channels.protocol import DeliveryError, FailureReason, deliver
from responders.channels.recipients import parse_contact
from responders.messages import (
    DigestMessage,
    Message,
    MessageKind,
    NoticeReminder,
    NoticeReminderMessage,
    Page,
    PageEvent,
    PageLinks,
    PageMessage,
)

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=60)
"""The longest one send keeps its message leased: the heartbeat renews the lease while the send
is in flight, but not past this, so a send that hangs beyond every channel timeout lets another
replica try."""
BATCH = 200


class Outcome(StrEnum):
    """How one delivery attempt ended (a metric label)."""

    DELIVERED = "delivered"
    RETRY = "retry"  # failed; tried again after a backoff
    DEAD = "dead"  # failed for good (permanent, or out of attempts): dead-lettered
    SUPERSEDED = "superseded"  # dropped unsent because its incident moved on
    LEASE_LOST = "lease_lost"  # the send outlasted the lease; another replica took it over


class SkipReason(StrEnum):
    """Why a message was ended without a send."""

    INCIDENT_MOVED_ON = "incident_moved_on"


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """One message's outcome; ``reason`` is empty when there is nothing to explain."""

    message: OutboxMessage
    outcome: Outcome
    reason: FailureReason | SkipReason | Literal[""] = ""
    channel_type: str = "unknown"
    """The endpoint's type (``webhook``, ``email``, …): a metric label."""


LinkMaker = Callable[[Page, str], PageLinks]
"""Builds a page's links for the recipient (outbox key) it is sent to."""


@dataclass(frozen=True, slots=True)
class Deliverer:
    """What delivery needs besides the rules: link building, the backoff jitter source and
    how pages are bundled during a storm."""

    links: LinkMaker
    rng: random.Random
    bundling: Bundling = field(default_factory=Bundling)


@dataclass(frozen=True, slots=True)
class _Sent:
    """A send that ended (``error`` None: delivered), its outcome not yet recorded."""

    message: OutboxMessage
    error: DeliveryError | None


async def _send(deliverer: Deliverer, routes: Routes, send: Send) -> DeliveryError | None:
    first = send.messages[0]
    channel = routes.channels.get(first.channel)
    if channel is None:
        return DeliveryError(FailureReason.UNKNOWN_CHANNEL, retryable=True, detail=first.channel)
    try:
        if send.digest:
            pages = tuple(_page_message(m, deliverer.links) for m in send.messages)
            await deliver(channel, DigestMessage(pages), digest_key(send.messages))
        else:
            await deliver(channel, _typed(first, deliverer.links), first.idempotency_key)
    except DeliveryError as err:
        return err
    return None


def digest_key(pages: tuple[OutboxMessage, ...]) -> str:
    """A digest's idempotency key: the same for the same pages to the same contact method."""
    ids = ",".join(str(page.id) for page in pages)
    return f"digest:{pages[0].channel}:{hashlib.sha256(ids.encode()).hexdigest()[:16]}"


def _page_message(message: OutboxMessage, links: LinkMaker) -> PageMessage:
    page = _page(message.payload)
    return PageMessage(page, links(page, message.channel))


def _typed(message: OutboxMessage, links: LinkMaker) -> Message:
    """The typed message an outbox row carries, with its links built now.

    A kind this version cannot read is retried rather than given up: it was queued by a newer
    replica, which can deliver it.
    """
    try:
        kind = MessageKind(message.kind)
    except ValueError:
        raise DeliveryError(
            FailureReason.UNKNOWN_KIND, retryable=True, detail=message.kind
        ) from None
    match kind:
        case MessageKind.PAGE:
            return _page_message(message, links)
        case MessageKind.NOTICE_REMINDER:
            reminder = NoticeReminder(**message.payload)
            page_links = links(_reminded_page(reminder), message.channel)
            return NoticeReminderMessage(reminder, page_links.incident)
        case _:  # subscriber messages have their own queue (``subscriber_delivery``)
            raise DeliveryError(FailureReason.UNSUPPORTED_KIND, retryable=False, detail=kind)


def _reminded_page(reminder: NoticeReminder) -> Page:
    """A page-shaped key for the link maker, which builds incident links from pages."""
    return Page(
        event=PageEvent.ACKNOWLEDGED,
        incident_id=reminder.incident_id,
        title=reminder.title,
        severity="",
        summary="",
        state="",
        rule="",
        component=None,
        group={},
        step=0,
    )


def _page(payload: Mapping[str, Any]) -> Page:
    """The page ``store.incidents.page_payload`` queued."""
    return Page(**{**payload, "event": PageEvent(payload["event"])})


async def _record(
    connection: Connection,
    deliverer: Deliverer,
    routes: Routes,
    sent: _Sent,
    owner: str,
    now: datetime,
) -> DeliveryOutcome:
    message, error = sent.message, sent.error
    endpoint = routes.rules.endpoint(message.channel)
    channel_type = endpoint.type if endpoint is not None else "unknown"
    if error is None:
        if not await outbox.record_delivered(connection, message, owner, now):
            return _lease_lost(message, channel_type)
        log.info("page.delivered", channel=message.channel, incident_id=message.incident_id)
        return DeliveryOutcome(message, Outcome.DELIVERED, channel_type=channel_type)
    policy = endpoint.retry if endpoint is not None else RetrySpec()
    delay = outbox.backoff(policy, message.attempts + 1, deliverer.rng) if error.retryable else None
    retry_at = now + delay if delay is not None else None
    if not await outbox.record_failed(connection, message, owner, error.reason, retry_at, now):
        return _lease_lost(message, channel_type)
    outcome = Outcome.RETRY if retry_at else Outcome.DEAD
    log.warning(
        "page.failed",
        channel=message.channel,
        incident_id=message.incident_id,
        reason=error.reason,
        outcome=outcome,
        attempt=message.attempts + 1,
    )
    if outcome is Outcome.DEAD and message.kind == MessageKind.PAGE:
        await _fall_through(connection, routes.rules, message, error.reason, now)
    return DeliveryOutcome(message, outcome, error.reason, channel_type)


async def _fall_through(
    connection: Connection, rules: RuleSet, message: OutboxMessage, reason: str, now: datetime
) -> None:
    """A page that died on a person's contact method goes on to their next one, in the same
    transaction; with none left, the timeline says the person could not be reached."""
    address = parse_contact(message.channel)
    if address is None:
        return
    here, there = rules.endpoint(address.key), rules.endpoint(address.next().key)
    if there is None:
        detail = {"person": address.person, "reason": reason}
        await outbox.note_unreachable(connection, message, detail, now)
        log.warning("page.unreachable", incident_id=message.incident_id, **detail)
        return
    detail = {
        "person": address.person,
        "from": here.type if here is not None else "unknown",
        "to": there.type,
        "reason": reason,
    }
    await outbox.fall_through(connection, message, address.next(), detail, now)
    log.info("page.fell_through", incident_id=message.incident_id, **detail)


def _lease_lost(message: OutboxMessage, channel_type: str) -> DeliveryOutcome:
    """The send took longer than the lease and another replica has the message now: this
    outcome is not recorded (that replica records its own)."""
    log.warning("page.lease_lost", channel=message.channel, incident_id=message.incident_id)
    return DeliveryOutcome(message, Outcome.LEASE_LOST, channel_type=channel_type)


@dataclass(frozen=True, slots=True)
class DeliveryBatch:
    """The outcomes one run of the delivery stage recorded."""

    outcomes: list[DeliveryOutcome]
    bundled: int = 0
    """Pages bundled into a digest for the first time."""

    @property
    def busy(self) -> bool:
        """True when messages were sent or superseded."""
        return bool(self.outcomes)

    def record(self, metrics: Metrics) -> None:
        """Count each outcome by channel and reason, and by channel type."""
        for delivery in self.outcomes:
            channel = delivery.message.channel
            metrics.deliveries.labels(channel, delivery.outcome, delivery.reason).inc()
            metrics.notifications.labels(delivery.channel_type, delivery.outcome).inc()
        if self.bundled:
            metrics.pages_bundled.inc(self.bundled)


class DeliveryStage:
    """The cycle's delivery stage: the outcomes earlier runs could not record, then the stale
    pages superseded and the due messages claimed, sent and recorded one by one."""

    name = "deliveries"
    lane = Lane.DELIVER

    def __init__(self, deliverer: Deliverer, limit: int = BATCH) -> None:
        self._deliverer = deliverer
        self._limit = limit
        self._unrecorded: list[_Sent] = []

    async def run(self, context: CycleContext) -> DeliveryBatch:
        """Deliver what is due now."""
        carried, self._unrecorded = self._unrecorded, []
        outcomes = await self._record_all(context, carried)
        async with pooled(context.pool) as connection:  # its return cannot lose the claim
            async with connection.transaction():
                superseded = await outbox.supersede_stale(connection, context.now)
            claimed = await outbox.claim_due(
                connection, context.owner, context.now, TERM, self._limit
            )
        for message in superseded:
            log.info("page.superseded", channel=message.channel, incident_id=message.incident_id)
        outcomes += [
            DeliveryOutcome(
                m, Outcome.SUPERSEDED, SkipReason.INCIDENT_MOVED_ON, _type(context.routes, m)
            )
            for m in superseded
        ]
        plan = await dispatch(
            context.pool, context.routes, claimed, self._deliverer.bundling, context.now
        )
        keeper = LeaseKeeper(
            _renewer(context.pool, context.owner),
            (message.id for message in claimed),
            context.clock.now,
            context.now,
            LEASE,
        )
        async with keeper:
            sent = await asyncio.gather(*(self._deliver(context, keeper, s) for s in plan.sends))
        outcomes += [outcome for done in sent for outcome in done]
        return DeliveryBatch(outcomes, plan.bundled)

    async def _deliver(
        self, context: CycleContext, keeper: LeaseKeeper, send: Send
    ) -> list[DeliveryOutcome]:
        """Send one message (or digest) and record how it went at once, page by page."""
        ids = [message.id for message in send.messages]
        try:
            error = await _send(self._deliverer, context.routes, send)
        except Exception:
            # Not a channel's way of failing (that is a DeliveryError): give the claim back.
            first = send.messages[0]
            log.exception("page.send_crashed", channel=first.channel, message=ids)
            for message_id in ids:
                keeper.let_go(message_id)
            await _release(context.pool, context.owner, ids)
            return []
        for message_id in ids:
            keeper.let_go(message_id)
        sent = [_Sent(message, error) for message in send.messages]
        return await self._record_all(context, sent, together=send.digest)

    async def _record_all(
        self, context: CycleContext, sends: list[_Sent], together: bool = False
    ) -> list[DeliveryOutcome]:
        """Record each outcome in its own transaction, or (``together``: a digest's pages) all
        in one, so a storm's digests cost one commit each rather than one per page; when that
        one is refused, page by page. One the database refuses is logged, and the message is
        tried again once its lease runs out; when the database cannot be reached, this one and
        the rest are kept for the next run (the lease is still this replica's if the database
        comes back soon)."""
        outcomes: list[DeliveryOutcome] = []
        chunks = [sends] if together and len(sends) > 1 else [[sent] for sent in sends]
        for position, chunk in enumerate(chunks):
            try:
                outcomes += await self._record_chunk(context, chunk)
            except Exception as err:
                if connection_failed(err):
                    left = [sent for rest in chunks[position:] for sent in rest]
                    log.warning("page.unrecorded", pages=len(left), error=type(err).__name__)
                    self._unrecorded += left
                    break
                if len(chunk) > 1:
                    outcomes += await self._record_all(context, chunk)
                    continue
                message = chunk[0].message
                log.exception("page.record_failed", channel=message.channel, id=message.id)
        return outcomes

    async def _record_chunk(
        self, context: CycleContext, chunk: list[_Sent]
    ) -> list[DeliveryOutcome]:
        now = context.clock.now()
        async with pooled(context.pool) as connection, connection.transaction():
            return [
                await _record(connection, self._deliverer, context.routes, sent, context.owner, now)
                for sent in chunk
            ]


def _renewer(pool: Pool, owner: str) -> Renew:
    async def renew(ids: list[int], until: datetime) -> None:
        async with pooled(pool) as connection:
            await outbox.renew_leases(connection, ids, owner, until)

    return renew


async def _release(pool: Pool, owner: str, ids: list[int]) -> None:
    """Let another try have the messages ``ids`` at once (best effort: else their leases run
    out)."""
    try:
        async with pooled(pool) as connection:
            await outbox.release_leases(connection, ids, owner)
    except Exception as err:
        log.warning("page.release_failed", id=ids, error=type(err).__name__)


def _type(routes: Routes, message: OutboxMessage) -> str:
    """The type of the endpoint ``message`` is addressed to (a metric label)."""
    endpoint = routes.rules.endpoint(message.channel)
    return endpoint.type if endpoint is not None else "unknown"
