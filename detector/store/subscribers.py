"""Subscribers to public incidents: email addresses confirmed by double opt-in, and webhooks.

Every answer to the public is the same whether or not an address is known; these functions
tell the caller, who keeps it to itself. Callers own the transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from detector.store.connection import Connection, rows_affected

_COLUMNS = "id, kind, address, components, token, secret, created_at, confirmed_at"


class SubscriberKind(StrEnum):
    """How a subscriber is reached."""

    EMAIL = "email"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One subscription."""

    id: int
    kind: SubscriberKind
    address: str
    components: tuple[str, ...]
    token: str
    secret: str | None
    created_at: datetime
    confirmed_at: datetime | None


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        **{**dict(row), "kind": SubscriberKind(row["kind"]), "components": tuple(row["components"])}
    )


async def subscribe(
    connection: Connection,
    kind: SubscriberKind,
    address: str,
    components: Sequence[str],
    now: datetime,
    *,
    confirmed: bool = False,
) -> Subscriber:
    """Add a subscription, or change the components of one not confirmed yet (``confirmed``,
    an operator's subscription, changes any and counts as confirmed). Webhooks get an HMAC
    secret."""
    row = await connection.fetchrow(
        f"""INSERT INTO subscribers (kind, address, components, token, secret, created_at,
             confirmed_at)
           VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN $6::timestamptz END)
           ON CONFLICT (kind, address) DO UPDATE SET components = CASE
             WHEN subscribers.confirmed_at IS NULL OR $7 THEN EXCLUDED.components
             ELSE subscribers.components END
           RETURNING {_COLUMNS}""",
        kind.value,
        address,
        list(components),
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(32) if kind is SubscriberKind.WEBHOOK else None,
        now,
        confirmed,
    )
    return _subscriber(row)


async def confirm(connection: Connection, token: str, now: datetime) -> bool:
    """Confirm the subscription ``token`` belongs to; False for an unknown token."""
    result: str = await connection.execute(
        "UPDATE subscribers SET confirmed_at = coalesce(confirmed_at, $2) WHERE token = $1",
        token,
        now,
    )
    return rows_affected(result) == 1


async def unsubscribe(connection: Connection, token: str) -> bool:
    """End the subscription ``token`` belongs to (its queued messages go with it)."""
    result: str = await connection.execute("DELETE FROM subscribers WHERE token = $1", token)
    return rows_affected(result) == 1


async def by_address(connection: Connection, address: str) -> list[Subscriber]:
    """Every subscription of ``address`` (export)."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM subscribers WHERE address = $1 ORDER BY id", address
    )
    return [_subscriber(row) for row in rows]


async def erase(connection: Connection, address: str) -> int:
    """Forget ``address`` entirely, with its queued and past deliveries; returns how many
    subscriptions it had."""
    result: str = await connection.execute("DELETE FROM subscribers WHERE address = $1", address)
    return rows_affected(result)


async def confirmed_batch(
    connection: Connection, components: Sequence[str], after: int, limit: int
) -> list[int]:
    """Up to ``limit`` confirmed subscribers with ids above ``after`` who want to hear about
    any of ``components`` (an empty choice means every component), in id order."""
    rows = await connection.fetch(
        """SELECT id FROM subscribers
           WHERE id > $1 AND confirmed_at IS NOT NULL
             AND (components = '{}' OR components && $2::text[])
           ORDER BY id LIMIT $3""",
        after,
        list(components),
        limit,
    )
    return [row["id"] for row in rows]
