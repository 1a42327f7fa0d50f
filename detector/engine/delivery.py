"""Engine stage 3: deliver due outbox messages through their channels.

Messages are leased, sent concurrently outside any transaction, and the outcome is recorded
afterwards; a replica that dies mid-send leaves a lease that expires and another replica retries.
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

from detector.engine.stage import CycleContext
from detector.ruleset.live import Routes
from detector.ruleset.schema import RetrySpec
from detector.service.metrics import Metrics
from detector.store import outbox
from detector.store.connection import Connection, Pool
from detector.store.outbox import OutboxMessage
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


LinkMaker = Callable[[Page], PageLinks]


@dataclass(frozen=True, slots=True)
class Deliverer:
    """What delivery needs besides the rules: link building and the backoff jitter source."""

    links: LinkMaker
    rng: random.Random


async def deliver_due(
    pool: Pool,
    deliverer: Deliverer,
    routes: Routes,
    owner: str,
    now: datetime,
    limit: int = 50,
) -> list[DeliveryOutcome]:
    """End stale pages, lease due messages, send them concurrently, record each result."""
    async with pool.acquire() as connection:
        async with connection.transaction():
            superseded = await outbox.supersede_stale(connection, now)
        messages = await outbox.claim_due(connection, owner, now, LEASE, limit)
    outcomes = await asyncio.gather(*(_send(deliverer, routes, message) for message in messages))
    for message in superseded:
        log.info("page.superseded", channel=message.channel, incident_id=message.incident_id)
    recorded = [
        DeliveryOutcome(m, Outcome.SUPERSEDED, SkipReason.INCIDENT_MOVED_ON) for m in superseded
    ]
    async with pool.acquire() as connection:
        for message, error in zip(messages, outcomes, strict=True):
            async with connection.transaction():
                recorded.append(
                    await _record(connection, deliverer, routes, message, error, owner, now)
                )
    return recorded


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
            return PageMessage(page, links(page))
        case MessageKind.NOTICE_REMINDER:
            reminder = NoticeReminder(**message.payload)
            page_links = links(_reminded_page(reminder))
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
    message: OutboxMessage,
    error: DeliveryError | None,
    owner: str,
    now: datetime,
) -> DeliveryOutcome:
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
    """The outcomes of one pass of :func:`deliver_due`."""

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
    """The cycle's delivery stage: :func:`deliver_due` through the channels in force."""

    name = "deliveries"

    def __init__(self, deliverer: Deliverer) -> None:
        self._deliverer = deliverer

    async def run(self, context: CycleContext) -> DeliveryBatch:
        """Deliver what is due now."""
        outcomes = await deliver_due(
            context.pool, self._deliverer, context.routes, context.owner, context.now
        )
        return DeliveryBatch(outcomes)
