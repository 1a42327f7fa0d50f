"""The intake log: where accepted webhooks are durable before the engine expands them.

Answering Alertmanager costs one row per group commit, whatever the number of alerts; the engine
then turns records into deduplicated signals in arrival order and deletes them, all in one
transaction, so a record is expanded exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import structlog
from pydantic import ValidationError

from detector import inbox
from detector.inbox import InsertResult, PendingSignal
from detector.intake import signals_from_record
from detector.model import Signal
from detector.store import Connection
from detector.wakeup import INTAKE_CHANNEL

log = structlog.get_logger(__name__)
_KEPT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Expansion:
    """What expanding intake log records stored: counts, the new signals a rule routes (to
    process now), unreadable records."""

    stored: InsertResult = field(default_factory=lambda: InsertResult(0, 0))
    fresh: list[PendingSignal] = field(default_factory=list)
    unreadable: int = 0


async def append(
    connection: Connection, received_at: datetime, requests: int, alerts: int, record: bytes
) -> None:
    """Store one record and notify engines at commit.

    A single statement, so it is atomic without an explicit transaction (one round trip).
    """
    await connection.execute(
        """WITH stored AS (
             INSERT INTO intake_log (received_at, requests, alerts, bodies)
             VALUES ($1, $2, $3, $4) RETURNING id)
           SELECT pg_notify($5, '') FROM stored""",
        received_at,
        requests,
        alerts,
        record,
        INTAKE_CHANNEL,
    )


async def expand(
    connection: Connection,
    max_alerts: int,
    now: datetime,
    unmatched: Callable[[Signal], bool] | None = None,
    live_rules: Sequence[str] = (),
) -> Expansion:
    """Turn the oldest records (about ``max_alerts`` alerts, at least one record) into signals,
    flagging the ones ``unmatched`` says no rule routes (unless an open incident of one of
    ``live_rules`` holds them).

    Call inside the transaction that holds the signal-processing lock; the new signals are
    returned rather than queued, for that transaction to process. A record that no longer
    parses (it did when accepted), or that PostgreSQL refuses to store, is kept with the
    rejected bodies, so it is never retried forever nor dropped unseen.
    """
    rows = await connection.fetch(
        """SELECT id, bodies FROM (
             SELECT id, bodies, sum(alerts) OVER (ORDER BY id) - alerts AS before
             FROM intake_log ORDER BY id LIMIT 1000) oldest
           WHERE before < $1 ORDER BY id""",
        max_alerts,
    )
    if not rows:
        return Expansion()
    records: list[tuple[asyncpg.Record, list[Signal]]] = []
    unreadable = 0
    for row in rows:
        try:
            records.append((row, signals_from_record(row["bodies"])))
        except _UNREADABLE as err:
            unreadable += 1
            await _set_aside(connection, row, now, "unreadable record", err)
    store = _Store(connection, now, unmatched, live_rules)
    stored, fresh, refused = await store.records(records)
    await connection.execute(
        "DELETE FROM intake_log WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
    )
    return Expansion(stored, fresh, unreadable + refused)


@dataclass(frozen=True, slots=True)
class _Store:
    """Inserting the signals of expanded records, one statement for all while they are fine."""

    connection: Connection
    now: datetime
    unmatched: Callable[[Signal], bool] | None
    live_rules: Sequence[str]

    async def records(
        self, records: list[tuple[asyncpg.Record, list[Signal]]]
    ) -> tuple[InsertResult, list[PendingSignal], int]:
        """Store every record's signals; the counts, the new signals, and how many records
        PostgreSQL refused (set aside, so they cannot fail this batch and every later one)."""
        try:
            stored, fresh = await self._insert([s for _, signals in records for s in signals])
        except asyncpg.DataError:
            pass
        else:
            return stored, fresh, 0
        stored, fresh, refused = InsertResult(0, 0), [], 0
        for row, signals in records:
            try:
                result, new = await self._insert(signals)
            except asyncpg.DataError as err:
                refused += 1
                await _set_aside(self.connection, row, self.now, "not storable", err)
                continue
            stored = InsertResult(
                stored.inserted + result.inserted,
                stored.duplicates + result.duplicates,
                stored.unmatched + result.unmatched,
            )
            fresh += new
        return stored, fresh, refused

    async def _insert(self, signals: list[Signal]) -> tuple[InsertResult, list[PendingSignal]]:
        async with self.connection.transaction():  # a savepoint: a failure leaves the rest
            return await inbox.insert_signals(
                self.connection,
                signals,
                unmatched=self.unmatched,
                queue=False,
                live_rules=self.live_rules,
            )


_UNREADABLE = (ValidationError, ValueError, OverflowError, KeyError, TypeError)
"""What a record that no longer reads as it did when accepted can raise while expanded."""


async def _set_aside(
    connection: Connection, row: asyncpg.Record, now: datetime, reason: str, err: Exception
) -> None:
    """Keep a record that cannot be expanded with the rejected bodies (never retried forever,
    never dropped unseen)."""
    log.error("intake.record_set_aside", record=row["id"], reason=reason, error=str(err)[:200])
    body = bytes(row["bodies"][:_KEPT_BYTES]).decode("utf-8", errors="replace")
    await inbox.keep_rejected(connection, now, "intake_log", reason, body)
