"""The delivery outbox: one row per outbound message, queued in the transaction of the decision
that orders it, leased to one replica, retried with exponential backoff and jitter, then
dead-lettered. Only the outbox retries."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from detector.domain.model import Incident, PageOrder
from detector.ruleset.channel_specs import RetrySpec
from detector.store import impact as impact_store
from detector.store.connection import Connection, rows_affected
from detector.store.timeline import add_timeline
from responders.channels.recipients import ContactAddress, parse_contact
from responders.messages import MessageKind, NoticeReminder, Page, PageEvent


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A leased message ready to deliver."""

    id: int
    incident_id: int
    channel: str
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    dispatched_at: datetime | None = None
    """When it was decided whether this page goes out alone or bundled (None: not yet)."""
    bundled: bool = False


def backoff(policy: RetrySpec, attempts: int, rng: random.Random) -> timedelta | None:
    """Delay before the next try after ``attempts`` failed ones, or None when it is time to give up.

    Doubles from ``initial_delay`` up to ``max_delay``, with ±20 % jitter so a recovering
    receiver is not hit by every queued message at the same instant.
    """
    if attempts >= policy.max_attempts:
        return None
    doublings = min(attempts - 1, 32)  # past this the cap applies anyway; avoids overflow
    base = min(policy.initial_delay * (1 << doublings), policy.max_delay)
    return base * rng.uniform(0.8, 1.2)


_MESSAGE_COLUMNS = (
    "id, incident_id, channel, kind, payload, idempotency_key, attempts, dispatched_at, bundled"
)
_CALLS_FOR_ACTION = [event.value for event in PageEvent if event.needs_ack]


async def add_pages(
    connection: Connection,
    incident: Incident,
    incident_id: int,
    pages: Sequence[PageOrder],
    now: datetime,
) -> None:
    """Queue the pages a decision ordered, due now; a page already queued in this epoch (same
    idempotency key) is not queued twice."""
    if not pages:
        return
    impact = await impact_store.described(connection, incident_id, incident.opened_at)
    await connection.executemany(
        """INSERT INTO outbox (incident_id, channel, kind, payload, idempotency_key,
                               next_attempt_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING""",
        [
            (
                incident_id,
                page.channel,
                MessageKind.PAGE.value,
                page_payload(incident, page, incident_id, impact),
                f"{incident_id}:{incident.epoch}:{page.dedup_suffix}",
                now,
            )
            for page in pages
        ],
    )


async def add_reminders(
    connection: Connection,
    incident_id: int,
    channels: Sequence[str],
    reminder: NoticeReminder,
    now: datetime,
) -> None:
    """Queue a notice reminder to each channel, due now; one per promised update and channel."""
    await connection.executemany(
        """INSERT INTO outbox (incident_id, channel, kind, payload, idempotency_key,
                               next_attempt_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING""",
        [
            (
                incident_id,
                channel,
                MessageKind.NOTICE_REMINDER.value,
                asdict(reminder),
                f"{incident_id}:reminder:{reminder.public_incident}:{reminder.due_at}:{channel}",
                now,
            )
            for channel in channels
        ],
    )


def page_payload(
    incident: Incident, page: PageOrder, incident_id: int, impact: str | None = None
) -> dict[str, Any]:
    """What the page says, frozen at the moment it was decided (delivery rebuilds the
    Page from it, so the two can never disagree on fields); a page to a person's contact
    method names them as its recipient."""
    address = parse_contact(page.channel)
    content = Page(
        event=page.event,
        incident_id=incident_id,
        title=incident.title,
        severity=incident.severity.value,
        summary=incident.summary if page.summary is None else page.summary,
        state=incident.state.value,
        rule=incident.rule,
        component=incident.component,
        group=dict(incident.group_labels),
        step=page.step,
        epoch=incident.epoch,
        impact=impact,
        recipient=None if address is None else address.person,
    )
    return asdict(content)


async def supersede_stale(connection: Connection, now: datetime) -> list[OutboxMessage]:
    """End pending pages whose incident has moved on since they were queued (acknowledged,
    resolved or reopened), noting each on the timeline, and return them.

    Such a page is usually waiting for a retry; delivered late it would page someone for an
    incident that no longer needs them, after the notice that says so. Pages leased for sending
    are left alone: their outcome is recorded as usual.
    """
    rows = await connection.fetch(
        f"""UPDATE outbox SET state = 'superseded', lease_owner = NULL, lease_until = NULL
           WHERE id IN (
             SELECT o.id FROM outbox o
             WHERE o.state = 'pending' AND (o.lease_until IS NULL OR o.lease_until < $1)
               AND o.kind = $3 AND o.payload->>'event' = ANY($2::text[])
               -- the epoch it was queued in: its idempotency key is incident:epoch:…
               AND split_part(o.idempotency_key, ':', 2)::integer
                   < (SELECT i.epoch FROM incidents i WHERE i.id = o.incident_id)
             ORDER BY o.id FOR UPDATE SKIP LOCKED)
           RETURNING {_MESSAGE_COLUMNS}""",
        now,
        _CALLS_FOR_ACTION,
        MessageKind.PAGE.value,
    )
    messages = [OutboxMessage(**dict(row)) for row in rows]
    for message in messages:
        detail = {**_detail(message, message.attempts), "reason": "incident moved on"}
        entry = (f"{message.kind}.superseded", now, detail)
        await add_timeline(connection, message.incident_id, [entry])
    return messages


async def claim_due(
    connection: Connection, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[OutboxMessage]:
    """Lease pending messages whose next attempt is due (call ``supersede_stale`` first)."""
    rows = await connection.fetch(
        f"""UPDATE outbox SET lease_owner = $1, lease_until = $2::timestamptz + $3::interval
           WHERE id IN (
             SELECT id FROM outbox
             WHERE state = 'pending' AND next_attempt_at <= $2
               AND (lease_until IS NULL OR lease_until < $2)
             ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)
           RETURNING {_MESSAGE_COLUMNS}""",
        owner,
        now,
        lease,
        limit,
    )
    return [OutboxMessage(**dict(row)) for row in rows]


async def renew_leases(
    connection: Connection, ids: Sequence[int], owner: str, until: datetime
) -> int:
    """Extend ``owner``'s leases on the messages ``ids`` to ``until`` (a send still in flight);
    a message another replica has taken over since is left alone. Returns how many."""
    result: str = await connection.execute(
        """UPDATE outbox SET lease_until = $3
           WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND state = 'pending'""",
        list(ids),
        owner,
        until,
    )
    return rows_affected(result)


async def release_leases(connection: Connection, ids: Sequence[int], owner: str) -> int:
    """End ``owner``'s leases on the messages ``ids``, which it will not send after all: any
    replica may claim them at once. Returns how many."""
    result: str = await connection.execute(
        """UPDATE outbox SET lease_until = NULL
           WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND state = 'pending'""",
        list(ids),
        owner,
    )
    return rows_affected(result)


async def record_delivered(
    connection: Connection, message: OutboxMessage, owner: str, now: datetime
) -> bool:
    """Mark delivered (if still leased by ``owner``) and note it on the timeline."""
    result: str = await connection.execute(
        """UPDATE outbox SET state = 'delivered', delivered_at = $3, attempts = attempts + 1,
                             lease_until = NULL
           WHERE id = $1 AND lease_owner = $2 AND state = 'pending'""",
        message.id,
        owner,
        now,
    )
    if result != "UPDATE 1":
        return False
    detail = _detail(message, message.attempts + 1)
    if message.bundled:
        detail["bundled"] = True
    entry = (f"{message.kind}.delivered", now, detail)
    await add_timeline(connection, message.incident_id, [entry])
    return True


async def record_failed(
    connection: Connection,
    message: OutboxMessage,
    owner: str,
    reason: str,
    retry_at: datetime | None,
    now: datetime,
) -> bool:
    """Schedule the next attempt, or dead-letter when ``retry_at`` is None (on the timeline too)."""
    result: str = await connection.execute(
        """UPDATE outbox SET attempts = attempts + 1, last_error = $3, lease_until = NULL,
                             state = CASE WHEN $4::timestamptz IS NULL
                                          THEN 'dead' ELSE 'pending' END,
                             next_attempt_at = coalesce($4, next_attempt_at)
           WHERE id = $1 AND lease_owner = $2 AND state = 'pending'""",
        message.id,
        owner,
        reason,
        retry_at,
    )
    if result != "UPDATE 1":
        return False
    kind = f"{message.kind}.failed" if retry_at else f"{message.kind}.dead_lettered"
    detail = {**_detail(message, message.attempts + 1), "reason": reason}
    if retry_at:
        detail["retry_at"] = retry_at.isoformat()
    await add_timeline(connection, message.incident_id, [(kind, now, detail)])
    return True


async def fall_through(
    connection: Connection,
    message: OutboxMessage,
    to: ContactAddress,
    detail: Mapping[str, Any],
    now: datetime,
) -> None:
    """Queue a dead page's payload again to the person's next contact method ``to``, due now,
    with the idempotency key of the dead one plus ``>index``, and note it on the timeline."""
    await connection.execute(
        """INSERT INTO outbox (incident_id, channel, kind, payload, idempotency_key,
                               next_attempt_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING""",
        message.incident_id,
        to.key,
        message.kind,
        message.payload,
        f"{message.idempotency_key}>{to.index}",
        now,
    )
    entry = (f"{message.kind}.fell_through", now, dict(detail))
    await add_timeline(connection, message.incident_id, [entry])


async def note_unreachable(
    connection: Connection, message: OutboxMessage, detail: Mapping[str, Any], now: datetime
) -> None:
    """Note on the timeline that a dead page's person has no contact method left to try."""
    entry = (f"{message.kind}.unreachable", now, dict(detail))
    await add_timeline(connection, message.incident_id, [entry])


async def sent_alone_since(connection: Connection, keys: Sequence[str], since: datetime) -> int:
    """How many pages to the outbox keys ``keys`` went out one by one (not bundled) after
    ``since`` (call under the person's bundling lock)."""
    count: int = await connection.fetchval(
        """SELECT count(*) FROM outbox
           WHERE channel = ANY($1::text[]) AND dispatched_at > $2 AND NOT bundled""",
        list(keys),
        since,
    )
    return count


async def mark_dispatched(
    connection: Connection, alone: Sequence[int], bundled: Sequence[int], now: datetime
) -> None:
    """Record how the pages ``alone`` and ``bundled`` go out, decided ``now``."""
    await connection.execute(
        """UPDATE outbox SET dispatched_at = $3, bundled = id = ANY($2::bigint[])
           WHERE id = ANY($1::bigint[] || $2::bigint[]) AND dispatched_at IS NULL""",
        list(alone),
        list(bundled),
        now,
    )


def _detail(message: OutboxMessage, attempt: int) -> dict[str, Any]:
    return {"channel": message.channel, "event": message.payload.get("event"), "attempt": attempt}


async def prune_finished(connection: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` messages created before ``cutoff`` that are no longer pending
    (delivered, dead-lettered or superseded); returns how many."""
    result: str = await connection.execute(
        """DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox WHERE state <> 'pending' AND created_at < $1 LIMIT $2)""",
        cutoff,
        limit,
    )
    return rows_affected(result)


async def oldest_due(connection: Connection, now: datetime) -> datetime | None:
    """When the longest-waiting message that is due by ``now`` fell due (leased ones included:
    a send that hangs keeps it waiting), or None when none is."""
    due: datetime | None = await connection.fetchval(
        "SELECT min(next_attempt_at) FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1",
        now,
    )
    return due
