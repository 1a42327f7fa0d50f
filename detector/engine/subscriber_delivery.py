"""Engine stage: deliver queued subscriber messages (mail, webhooks), retried with backoff.

The subscribers' own queue (``store.subscriber_outbox``) is leased like the incident outbox,
so each message goes out once across replicas; a failure is retried with the outbox's
exponential backoff and jitter and dead-lettered after the last attempt. Links to confirm and
unsubscribe are built at send time from the subscriber's token.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

import structlog

from detector.engine.stage import CycleContext, Lane
from detector.ruleset.channel_specs import RetrySpec
from detector.service.metrics import Metrics
from detector.store import subscriber_outbox
from detector.store.connection import Connection
from detector.store.outbox import backoff
from detector.store.pooled import pooled
from detector.store.subscriber_outbox import SubscriberMessage
from detector.store.subscribers import SubscriberKind
from responders.channels.protocol import Channel, DeliveryError, FailureReason, deliver
from responders.messages import (
    Message,
    MessageKind,
    Recipient,
    SubscriberNoticeMessage,
    SubscriptionConfirmMessage,
)

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=60)
SUBSCRIBE_PATH = "/api/v2/subscribers"
SUBSCRIBER_RETRY = RetrySpec(max_attempts=8, initial_delay=timedelta(seconds=30))
"""A mail server or webhook that is down for a while still gets the update (about half an
hour of retries)."""


class SubscriberOutcome(StrEnum):
    """How one attempt ended (the metric's ``outcome`` label)."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    LEASE_LOST = "lease_lost"


@dataclass(frozen=True, slots=True)
class SubscriberLinks:
    """Builds a subscriber's confirm and unsubscribe links on the status page's address."""

    base: str

    def recipient(self, message: SubscriberMessage) -> Recipient:
        """The subscriber as the channel reaches it."""
        root = f"{self.base.rstrip('/')}{SUBSCRIBE_PATH}"
        return Recipient(
            address=message.address,
            unsubscribe_link=f"{root}/unsubscribe?token={message.token}",
            confirm_link=f"{root}/confirm?token={message.token}",
            secret=message.secret,
        )


@dataclass(frozen=True, slots=True)
class SubscriberBatch:
    """What one pass delivered, per channel and outcome."""

    outcomes: list[tuple[SubscriberKind, SubscriberOutcome]] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """True when messages were attempted."""
        return bool(self.outcomes)

    def record(self, metrics: Metrics) -> None:
        """Count deliveries by channel and outcome."""
        for channel, outcome in self.outcomes:
            metrics.subscriber_deliveries.labels(channel, outcome).inc()


def typed(message: SubscriberMessage, links: SubscriberLinks) -> Message:
    """The typed message a queued row carries."""
    recipient = links.recipient(message)
    payload = message.payload
    if message.kind == MessageKind.SUBSCRIPTION_CONFIRM:
        return SubscriptionConfirmMessage(recipient, payload["page_name"])
    if message.kind == MessageKind.SUBSCRIBER_NOTICE:
        return SubscriberNoticeMessage(
            recipient, payload["subject"], payload["text"], payload["incident"], payload["page"]
        )
    raise DeliveryError(FailureReason.UNKNOWN_KIND, retryable=True, detail=message.kind)


class SubscriberDeliveryStage:
    """The cycle's stage that sends due subscriber messages through their channels."""

    name = "subscriber_deliveries"
    lane = Lane.DELIVER

    def __init__(
        self,
        channels: Mapping[SubscriberKind, Channel],
        links: SubscriberLinks,
        retry: RetrySpec = SUBSCRIBER_RETRY,
        limit: int = 200,
    ) -> None:
        self._channels = channels
        self._links = links
        self._retry = retry
        self._limit = limit
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    async def run(self, context: CycleContext) -> SubscriberBatch:
        """Send what is due now, concurrently, and record each attempt."""
        async with pooled(context.pool) as connection:  # its return cannot lose the claim
            messages = await subscriber_outbox.claim_due(
                connection, context.owner, context.now, LEASE, self._limit
            )
        errors = await asyncio.gather(*(self._send(message) for message in messages))
        sent = [m.id for m, error in zip(messages, errors, strict=True) if error is None]
        outcomes = []
        async with context.pool.acquire() as connection:
            marked = await subscriber_outbox.record_delivered(
                connection, sent, context.owner, context.now
            )
            for message, error in zip(messages, errors, strict=True):
                if error is None:
                    delivered = message.id in marked
                    outcome = (
                        SubscriberOutcome.DELIVERED if delivered else SubscriberOutcome.LEASE_LOST
                    )
                else:
                    outcome = await self._record_failure(connection, message, error, context)
                outcomes.append((message.channel, outcome))
        return SubscriberBatch(outcomes)

    async def _send(self, message: SubscriberMessage) -> DeliveryError | None:
        try:
            await deliver(
                self._channels[message.channel],
                typed(message, self._links),
                message.idempotency_key,
            )
        except DeliveryError as err:
            return err
        return None

    async def _record_failure(
        self,
        connection: Connection,
        message: SubscriberMessage,
        error: DeliveryError,
        context: CycleContext,
    ) -> SubscriberOutcome:
        retry_at = None
        if error.retryable:
            delay = backoff(self._retry, message.attempts + 1, self._rng)
            retry_at = None if delay is None else context.now + delay
        reason = str(error.reason)
        if not await subscriber_outbox.record_failed(
            connection, message, context.owner, reason, retry_at
        ):
            return SubscriberOutcome.LEASE_LOST
        log.warning(
            "subscriber.delivery_failed",
            channel=message.channel,
            reason=error.reason,
            retry_at=retry_at.isoformat() if retry_at else None,
        )
        return SubscriberOutcome.RETRY if retry_at else SubscriberOutcome.DEAD
