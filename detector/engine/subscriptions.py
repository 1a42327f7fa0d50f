"""Subscribing, confirming, unsubscribing, and an address's export and erasure, each one
transaction. What the public is told never depends on whether an address was known."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from detector.store import subscriber_outbox, subscribers
from detector.store.connection import Pool
from detector.store.subscribers import Subscriber, SubscriberKind
from responders.messages import MessageKind


async def subscribe_email(
    pool: Pool, address: str, components: Sequence[str], page_name: str, now: datetime
) -> None:
    """Start a double opt-in: a new or unconfirmed address gets a confirmation mail; a
    confirmed one is left as it is (the answer is the same either way)."""
    async with pool.acquire() as connection, connection.transaction():
        found = await subscribers.subscribe(
            connection, SubscriberKind.EMAIL, address, components, now
        )
        if found.confirmed_at is None:
            await subscriber_outbox.add_many(
                connection,
                [found.id],
                MessageKind.SUBSCRIPTION_CONFIRM,
                {"page_name": page_name},
                f"confirm:{now.isoformat()}",
                now,
            )


async def add_webhook(pool: Pool, url: str, components: Sequence[str], now: datetime) -> Subscriber:
    """An operator's webhook subscription (confirmed at once), with its signing secret."""
    async with pool.acquire() as connection, connection.transaction():
        return await subscribers.subscribe(
            connection, SubscriberKind.WEBHOOK, url, components, now, confirmed=True
        )


async def confirm(pool: Pool, token: str, now: datetime) -> bool:
    """Confirm by the mailed token; False for an unknown one."""
    async with pool.acquire() as connection:
        return await subscribers.confirm(connection, token, now)


async def unsubscribe(pool: Pool, token: str) -> None:
    """End the subscription the token belongs to, if any."""
    async with pool.acquire() as connection:
        await subscribers.unsubscribe(connection, token)


async def export(pool: Pool, address: str) -> list[dict[str, Any]]:
    """Everything kept about ``address``: its subscriptions and what was sent to each."""
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        found = await subscribers.by_address(connection, address)
        return [
            {
                "kind": sub.kind.value,
                "address": sub.address,
                "components": list(sub.components),
                "created_at": sub.created_at.isoformat(),
                "confirmed_at": sub.confirmed_at.isoformat() if sub.confirmed_at else None,
                "deliveries": [
                    {
                        key: value.isoformat() if isinstance(value, datetime) else value
                        for key, value in row.items()
                    }
                    for row in await subscriber_outbox.history(connection, sub.id)
                ],
            }
            for sub in found
        ]


async def erase(pool: Pool, address: str) -> int:
    """Forget ``address``; returns how many subscriptions it had."""
    async with pool.acquire() as connection:
        return await subscribers.erase(connection, address)
