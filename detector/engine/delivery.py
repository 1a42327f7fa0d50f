"""Engine stage 3: deliver due outbox messages through their channels.

Messages are leased, sent concurrently outside any transaction, and the outcome is recorded
afterwards; a replica that dies mid-send leaves a lease that expires and another replica retries.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from detector.ruleset.live import Routes
from detector.ruleset.schema import RetrySpec
from detector.store import outbox
from detector.store.connection import Connection
from detector.store.outbox import OutboxMessage
from responders.channels import DeliveryError
from responders.paging import PageContent, PageLinks, render_page

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery attempt ended: ``delivered``, ``retry`` or ``dead``; ``superseded`` when
    a page was dropped unsent because its incident moved on; ``lease_lost`` when the send
    outlasted the lease and another replica took the message over."""

    message: OutboxMessage
    outcome: str
    reason: str = ""


LinkMaker = Callable[[PageContent], PageLinks]


@dataclass(frozen=True, slots=True)
class Deliverer:
    """What delivery needs besides the rules: link building and the backoff jitter source."""

    links: LinkMaker
    rng: random.Random


async def deliver_due(
    pool: asyncpg.Pool,
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
    recorded = [DeliveryOutcome(m, "superseded", "incident_moved_on") for m in superseded]
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
        return DeliveryError("unknown_channel", retryable=True, detail=message.channel)
    content = PageContent(**message.payload)
    try:
        await channel.send(render_page(content, deliverer.links(content)), message.idempotency_key)
    except DeliveryError as err:
        return err
    return None


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
        return DeliveryOutcome(message, "delivered")
    spec = routes.rules.channels.get(message.channel)
    policy = spec.retry if spec is not None else RetrySpec()
    delay = outbox.backoff(policy, message.attempts + 1, deliverer.rng) if error.retryable else None
    retry_at = now + delay if delay is not None else None
    if not await outbox.record_failed(connection, message, owner, error.reason, retry_at, now):
        return _lease_lost(message)
    outcome = "retry" if retry_at else "dead"
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
    return DeliveryOutcome(message, "lease_lost")
