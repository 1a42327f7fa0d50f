"""The subscribers' delivery queue: one row per message to one subscriber, queued in batches by
the notice fan-out, leased to one replica, retried with the outbox's backoff, then
dead-lettered. A subscriber erased or unsubscribed takes its rows with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from detector.store.connection import Connection, rows_affected
from detector.store.subscribers import SubscriberKind


@dataclass(frozen=True, slots=True)
class SubscriberMessage:
    """A leased message with what is needed to reach its subscriber."""

    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    channel: SubscriberKind
    address: str
    token: str
    secret: str | None


async def add_many(
    connection: Connection,
    subscriber_ids: Sequence[int],
    kind: str,
    payload: dict[str, Any],
    key: str,
    now: datetime,
) -> int:
    """Queue one message (``payload``) to each subscriber, due now; ``key`` plus the subscriber
    id is the idempotency key, so a batch queued twice is queued once. Returns how many."""
    result: str = await connection.execute(
        """INSERT INTO subscriber_outbox (subscriber_id, kind, payload, idempotency_key,
             next_attempt_at, created_at)
           SELECT s, $2, $3, $4 || ':' || s, $5, $5 FROM unnest($1::bigint[]) AS s
           ON CONFLICT (idempotency_key) DO NOTHING""",
        list(subscriber_ids),
        kind,
        payload,
        key,
        now,
    )
    return rows_affected(result)


async def claim_due(
    connection: Connection, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[SubscriberMessage]:
    """Lease pending messages whose next attempt is due."""
    rows = await connection.fetch(
        """WITH claimed AS (
             UPDATE subscriber_outbox SET lease_owner = $1,
                    lease_until = $2::timestamptz + $3::interval
             WHERE id IN (
               SELECT id FROM subscriber_outbox
               WHERE state = 'pending' AND next_attempt_at <= $2
                 AND (lease_until IS NULL OR lease_until < $2)
               ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING id, subscriber_id, kind, payload, idempotency_key, attempts)
           SELECT c.id, c.kind, c.payload, c.idempotency_key, c.attempts,
                  s.kind AS channel, s.address, s.token, s.secret
           FROM claimed c JOIN subscribers s ON s.id = c.subscriber_id ORDER BY c.id""",
        owner,
        now,
        lease,
        limit,
    )
    return [
        SubscriberMessage(**{**dict(row), "channel": SubscriberKind(row["channel"])})
        for row in rows
    ]


async def record_delivered(
    connection: Connection, ids: Sequence[int], owner: str, now: datetime
) -> set[int]:
    """Mark delivered the messages of ``ids`` still leased by ``owner`` (one statement for a
    whole pass); returns those it marked."""
    rows = await connection.fetch(
        """UPDATE subscriber_outbox SET attempts = attempts + 1, lease_until = NULL,
             last_error = NULL, state = 'delivered', delivered_at = $3
           WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND state = 'pending'
           RETURNING id""",
        list(ids),
        owner,
        now,
    )
    return {row["id"] for row in rows}


async def record_failed(
    connection: Connection,
    message: SubscriberMessage,
    owner: str,
    error: str,
    retry_at: datetime | None,
) -> bool:
    """Record a failed attempt: retried at ``retry_at``, or dead-lettered without one. False
    when another replica took the message over."""
    result: str = await connection.execute(
        """UPDATE subscriber_outbox SET attempts = attempts + 1, lease_until = NULL,
             last_error = $3,
             state = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
             next_attempt_at = coalesce($4, next_attempt_at)
           WHERE id = $1 AND lease_owner = $2 AND state = 'pending'""",
        message.id,
        owner,
        error,
        retry_at,
    )
    return rows_affected(result) == 1


async def history(connection: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    """What was sent to a subscriber and how it went (export)."""
    rows = await connection.fetch(
        """SELECT kind, payload->>'subject' AS subject, state, attempts, created_at, delivered_at
           FROM subscriber_outbox WHERE subscriber_id = $1 ORDER BY id""",
        subscriber_id,
    )
    return [dict(row) for row in rows]


async def prune_finished(connection: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` delivered or dead messages created before ``cutoff``."""
    result: str = await connection.execute(
        """DELETE FROM subscriber_outbox WHERE id IN (
             SELECT id FROM subscriber_outbox
             WHERE state <> 'pending' AND created_at < $1 LIMIT $2)""",
        cutoff,
        limit,
    )
    return rows_affected(result)
