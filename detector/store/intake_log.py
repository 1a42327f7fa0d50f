"""The intake log, where accepted webhooks are durable before the engine expands them, and the
rejected webhooks (bodies intake refused, or records that could not be expanded) kept for
inspection.

Answering Alertmanager costs one row per group commit, whatever the number of alerts; the engine
then turns records into deduplicated signals in arrival order and deletes them, all in one
transaction, so a record is expanded exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError

from detector.domain.model import Signal
from detector.intake.alertmanager import record_entries, signals_from_entry, signals_from_record
from detector.store import signals as inbox
from detector.store.connection import Connection
from detector.store.signals import InsertResult, PendingSignal
from detector.store.wakeup import INTAKE_CHANNEL

log = structlog.get_logger(__name__)
_KEPT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Expansion:
    """What expanding intake log records stored: counts, the new signals a rule routes (to
    process now), and how many records or webhooks were set aside as unreadable or unstorable."""

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


async def keep_rejected(
    connection: Connection,
    received_at: datetime,
    field: str,
    reason: str,
    body: str,
    keep: int | None = None,
) -> None:
    """Keep a rejected body for inspection, bounded to the newest ``keep`` rows when given."""
    if keep is not None and keep <= 0:
        return
    await connection.execute(
        "INSERT INTO rejected_webhooks (received_at, field, reason, body) VALUES ($1, $2, $3, $4)",
        received_at,
        field,
        reason,
        body,
    )
    if keep is None:
        return
    await connection.execute(
        """DELETE FROM rejected_webhooks WHERE id <= (
             SELECT id FROM rejected_webhooks ORDER BY id DESC OFFSET $1 LIMIT 1)""",
        keep,
    )


async def rejected(connection: Connection, limit: int) -> list[dict[str, Any]]:
    """The most recently rejected webhook bodies with the reason."""
    rows = await connection.fetch(
        "SELECT id, received_at, field, reason, body FROM rejected_webhooks"
        " ORDER BY id DESC LIMIT $1",
        limit,
    )
    return [dict(row) for row in rows]


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
    expander = _Expander(connection, now, unmatched, live_rules)
    units = [unit for row in rows for unit in await expander.read(row["id"], row["bodies"])]
    stored, fresh = await expander.store(units)
    await connection.execute(
        "DELETE FROM intake_log WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
    )
    return Expansion(stored, fresh, expander.set_aside)


@dataclass(frozen=True, slots=True)
class _Unit:
    """Signals to store together: a whole record, or one webhook of it (``whole`` False)."""

    record: int
    text: bytes
    signals: list[Signal]
    whole: bool = True


@dataclass(slots=True)
class _Expander:
    """Reads and stores records whole while they are fine; one that fails (it no longer reads
    as when it was accepted, or PostgreSQL refuses it) is retried webhook by webhook, and only
    the webhooks that fail alone are set aside, so they cannot fail every later batch and the
    rest of their record is not lost with them."""

    connection: Connection
    now: datetime
    unmatched: Callable[[Signal], bool] | None
    live_rules: Sequence[str]
    set_aside: int = 0

    async def read(self, record: int, text: bytes) -> list[_Unit]:
        """The record whole, or its webhooks that still read."""
        try:
            return [_Unit(record, text, signals_from_record(text))]
        except _UNREADABLE:
            return await self._split(record, text, "unreadable record")

    async def store(self, units: list[_Unit]) -> tuple[InsertResult, list[PendingSignal]]:
        """Insert every unit's signals, with one statement while that works."""
        try:
            return await self._insert([signal for unit in units for signal in unit.signals])
        except asyncpg.DataError:
            pass
        stored, fresh = InsertResult(0, 0), []
        for unit in units:
            try:
                result, new = await self._insert(unit.signals)
            except asyncpg.DataError as err:
                if not unit.whole:
                    await self._keep(unit.record, unit.text, "not storable", err)
                    continue
                result, new = await self.store(
                    await self._split(unit.record, unit.text, "not storable")
                )
            stored += result
            fresh += new
        return stored, fresh

    async def _split(self, record: int, text: bytes, reason: str) -> list[_Unit]:
        try:
            entries = record_entries(text)
        except _UNREADABLE as err:
            await self._keep(record, text, reason, err)
            return []
        units = []
        for entry in entries:
            kept = json.dumps(entry, default=str).encode()  # only to keep it if it fails
            try:
                units.append(_Unit(record, kept, signals_from_entry(entry), whole=False))
            except _UNREADABLE as err:
                await self._keep(record, kept, reason, err)
        return units

    async def _insert(self, signals: list[Signal]) -> tuple[InsertResult, list[PendingSignal]]:
        async with self.connection.transaction():  # a savepoint: a failure leaves the rest
            return await inbox.insert_signals(
                self.connection,
                signals,
                unmatched=self.unmatched,
                queue=False,
                live_rules=self.live_rules,
            )

    async def _keep(self, record: int, text: bytes, reason: str, err: Exception) -> None:
        """Keep what cannot be expanded with the rejected bodies (never retried forever, never
        dropped unseen)."""
        self.set_aside += 1
        log.error("intake.set_aside", record=record, reason=reason, error=str(err)[:200])
        body = bytes(text[:_KEPT_BYTES]).decode("utf-8", errors="replace")
        await keep_rejected(self.connection, self.now, "intake_log", reason, body)


_UNREADABLE = (ValidationError, ValueError, OverflowError, KeyError, TypeError)
"""What a record that no longer reads as it did when accepted can raise while expanded."""


async def backlog(connection: Connection) -> inbox.Backlog:
    """The alerts in records not yet expanded (replays of stored ones included)."""
    row = await connection.fetchrow(
        "SELECT coalesce(sum(alerts), 0) AS waiting, min(received_at) AS oldest FROM intake_log"
    )
    assert row is not None  # an aggregate: always one row
    return inbox.Backlog(row["waiting"], row["oldest"])
