"""Engine stage 3: deliver due outbox messages through their channels.

Messages are claimed with a short lease (``leases.TERM``) and sent concurrently outside any
transaction; a heartbeat renews the leases of the sends still in flight, and each send's outcome
is recorded as soon as that send ends. A replica that dies therefore leaves behind only the
sends it had in flight and the outcomes it had not yet recorded, and another replica retries
those once their lease runs out, a few seconds later (``docs/operations.md``, *Delivery after a
crash*). An outcome the database cannot take (it is unreachable) is kept and recorded at the
start of the next run, while the lease is still this replica's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import structlog

from detector.engine.leases import TERM, LeaseKeeper, Renew
from detector.engine.stage import CycleContext
from detector.ruleset.channel_specs import RetrySpec
from detector.ruleset.live import Routes
from detector.service.metrics import Metrics
from detector.store import outbox
from detector.store.connection import Connection, Pool
from detector.store.outbox import OutboxMessage
from detector.store.pooled import connection_failed, pooled
from responders.channels.protocol import DeliveryError, FailureReason, deliver
from responders.messages import (
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
BATCH = 50


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


LinkMaker = Callable[[Page, str], PageLinks]
"""Builds a page's links for the recipient (outbox key) it is sent to."""


@dataclass(frozen=True, slots=True)
class Deliverer:
    """What delivery needs besides the rules: link building and the backoff jitter source."""

    links: LinkMaker
    rng: random.Random


@dataclass(frozen=True, slots=True)
class _Sent:
    """A send that ended (``error`` None: delivered), its outcome not yet recorded."""

    message: OutboxMessage
    error: DeliveryError | None


async def _send(
    deliverer: Deliverer, routes: Routes, message: OutboxMessage
) -> DeliveryError | None:
    channel = routes.channels.get(message.channel)
    if channel is None:
        return DeliveryError(FailureReason.UNKNOWN_CHANNEL, retryable=True, detail=message.channel)
    try:
        await deliver(channel, _typed(message, deliverer.links), message.idempotency_key)
    except DeliveryError as err:
        return err
    return None


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
            page = _page(message.payload)
            return PageMessage(page, links(page, message.channel))
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
    if error is None:
        if not await outbox.record_delivered(connection, message, owner, now):
            return _lease_lost(message)
        log.info("page.delivered", channel=message.channel, incident_id=message.incident_id)
        return DeliveryOutcome(message, Outcome.DELIVERED)
    spec = routes.rules.channels.get(message.channel)
    policy = spec.retry if spec is not None else RetrySpec()
    delay = outbox.backoff(policy, message.attempts + 1, deliverer.rng) if error.retryable else None
    retry_at = now + delay if delay is not None else None
    if not await outbox.record_failed(connection, message, owner, error.reason, retry_at, now):
        return _lease_lost(message)
    outcome = Outcome.RETRY if retry_at else Outcome.DEAD
    log.warning(
        "page.failed",
        channel=message.channel,
        incident_id=message.incident_id,
        reason=error.reason,
        outcome=outcome,
        attempt=message.attempts + 1,
    )
    return DeliveryOutcome(message, outcome, error.reason)


def _lease_lost(message: OutboxMessage) -> DeliveryOutcome:
    """The send took longer than the lease and another replica has the message now: this
    outcome is not recorded (that replica records its own)."""
    log.warning("page.lease_lost", channel=message.channel, incident_id=message.incident_id)
    return DeliveryOutcome(message, Outcome.LEASE_LOST)


@dataclass(frozen=True, slots=True)
class DeliveryBatch:
    """The outcomes one run of the delivery stage recorded."""

    outcomes: list[DeliveryOutcome]

    @property
    def busy(self) -> bool:
        """True when messages were sent or superseded."""
        return bool(self.outcomes)

    def record(self, metrics: Metrics) -> None:
        """Count each outcome by channel and reason."""
        for delivery in self.outcomes:
            channel = delivery.message.channel
            metrics.deliveries.labels(channel, delivery.outcome, delivery.reason).inc()


class DeliveryStage:
    """The cycle's delivery stage: the outcomes earlier runs could not record, then the stale
    pages superseded and the due messages claimed, sent and recorded one by one."""

    name = "deliveries"

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
            DeliveryOutcome(m, Outcome.SUPERSEDED, SkipReason.INCIDENT_MOVED_ON) for m in superseded
        ]
        keeper = LeaseKeeper(
            _renewer(context.pool, context.owner),
            (message.id for message in claimed),
            context.clock.now,
            context.now,
            LEASE,
        )
        async with keeper:
            sent = await asyncio.gather(*(self._deliver(context, keeper, m) for m in claimed))
        return DeliveryBatch(outcomes + [outcome for outcome in sent if outcome is not None])

    async def _deliver(
        self, context: CycleContext, keeper: LeaseKeeper, message: OutboxMessage
    ) -> DeliveryOutcome | None:
        """Send one message and record how it went at once."""
        try:
            error = await _send(self._deliverer, context.routes, message)
        except Exception:
            # Not a channel's way of failing (that is a DeliveryError): give the claim back.
            log.exception("page.send_crashed", channel=message.channel, message=message.id)
            keeper.let_go(message.id)
            await _release(context.pool, context.owner, message)
            return None
        keeper.let_go(message.id)
        recorded = await self._record_all(context, [_Sent(message, error)])
        return recorded[0] if recorded else None

    async def _record_all(self, context: CycleContext, sends: list[_Sent]) -> list[DeliveryOutcome]:
        """Record each outcome in its own transaction. One the database refuses is logged, and
        the message is tried again once its lease runs out; when the database cannot be
        reached, this one and the rest are kept for the next run (the lease is still this
        replica's if the database comes back soon)."""
        outcomes = []
        for position, sent in enumerate(sends):
            try:
                outcomes.append(await self._record_one(context, sent))
            except Exception as err:
                message = sent.message
                if not connection_failed(err):
                    log.exception("page.record_failed", channel=message.channel, id=message.id)
                    continue
                log.warning(
                    "page.unrecorded", pages=len(sends) - position, error=type(err).__name__
                )
                self._unrecorded += sends[position:]
                break
        return outcomes

    async def _record_one(self, context: CycleContext, sent: _Sent) -> DeliveryOutcome:
        now = context.clock.now()
        async with pooled(context.pool) as connection, connection.transaction():
            return await _record(
                connection, self._deliverer, context.routes, sent, context.owner, now
            )


def _renewer(pool: Pool, owner: str) -> Renew:
    async def renew(ids: list[int], until: datetime) -> None:
        async with pooled(pool) as connection:
            await outbox.renew_leases(connection, ids, owner, until)

    return renew


async def _release(pool: Pool, owner: str, message: OutboxMessage) -> None:
    """Let another try have ``message`` at once (best effort: else its lease runs out)."""
    try:
        async with pooled(pool) as connection:
            await outbox.release_leases(connection, [message.id], owner)
    except Exception as err:
        log.warning("page.release_failed", id=message.id, error=type(err).__name__)
