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
from detector.store.waiting import Backlog
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


@dataclass(frozen=True, slots=True)
class Record:
    """Webhook bodies committed together: ``body`` is their ``log_record``; ``alertnames`` the
    distinct alert names in them (None if not known, which keeps the record from being taken
    ahead of older ones)."""

    requests: int
    alerts: int
    alertnames: tuple[str, ...] | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Head:
    """An intake log record not yet expanded, as the engine decides whether to take it ahead
    of older ones: its alert names and size, not its bodies."""

    id: int
    alerts: int
    alertnames: tuple[str, ...] | None


NAMES_UNKNOWN = ""
"""The notification payload of a record whose alert names are not known or too long to send
(PostgreSQL caps a payload at 8,000 bytes)."""
_PAYLOAD_BYTES = 7_900


async def append(connection: Connection, received_at: datetime, records: Sequence[Record]) -> None:
    """Store records in arrival order and notify engines at commit, each notification naming
    its record's alerts (``names_payload``).

    A single statement, so it is atomic without an explicit transaction (one round trip).
    """
    await connection.execute(
        """WITH stored AS (
             INSERT INTO intake_log (received_at, requests, alerts, alertnames, bodies)
             SELECT $1, r.requests, r.alerts,
                    CASE WHEN json_typeof(r.names) = 'array'
                         THEN ARRAY(SELECT json_array_elements_text(r.names)) END,
                    r.bodies
             FROM ROWS FROM (unnest($2::integer[]), unnest($3::integer[]),
                             json_array_elements($4::json), unnest($5::bytea[]))
               WITH ORDINALITY AS r (requests, alerts, names, bodies, n)
             ORDER BY r.n
             RETURNING id)
           SELECT pg_notify($6, payload) FROM unnest($7::text[]) AS payload""",
        received_at,
        [record.requests for record in records],
        [record.alerts for record in records],
        [record.alertnames for record in records],
        [record.body for record in records],
        INTAKE_CHANNEL,
        [names_payload(record.alertnames) for record in records],
    )


def names_payload(alertnames: tuple[str, ...] | None) -> str:
    """The alert names as a notification payload (a JSON array), or ``NAMES_UNKNOWN``."""
    if alertnames is None:
        return NAMES_UNKNOWN
    text = json.dumps(alertnames)
    return text if len(text.encode()) <= _PAYLOAD_BYTES else NAMES_UNKNOWN


def payload_names(payload: str) -> tuple[str, ...] | None:
    """The alert names a notification payload carries; None when unknown (or unreadable: an
    intake replica of another version may send something else)."""
    try:
        names = json.loads(payload) if payload else None
    except ValueError:
        return None
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return tuple(names)
    return None


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
    *,
    only: Sequence[int] | None = None,
) -> Expansion:
    """Turn the oldest records (about ``max_alerts`` alerts, at least one record), or the
    records ``only`` names, into signals, flagging the ones ``unmatched`` says no rule routes
    (unless an open incident of one of ``live_rules`` holds them).

    Call inside the transaction that holds the signal-processing lock; the new signals are
    returned rather than queued, for that transaction to process. A record that no longer
    parses (it did when accepted), or that PostgreSQL refuses to store, is kept with the
    rejected bodies, so it is never retried forever nor dropped unseen.
    """
    if only is None:
        rows = await connection.fetch(
            """SELECT id, bodies FROM (
                 SELECT id, bodies, sum(alerts) OVER (ORDER BY id) - alerts AS before
                 FROM intake_log ORDER BY id LIMIT 1000) oldest
               WHERE before < $1 ORDER BY id""",
            max_alerts,
        )
    else:
        rows = await connection.fetch(
            "SELECT id, bodies FROM intake_log WHERE id = ANY($1::bigint[]) ORDER BY id", only
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


async def heads(connection: Connection, limit: int) -> list[Head]:
    """The oldest ``limit`` records not yet expanded, without their bodies."""
    rows = await connection.fetch(
        "SELECT id, alerts, alertnames FROM intake_log ORDER BY id LIMIT $1", limit
    )
    return [
        Head(
            row["id"],
            row["alerts"],
            None if row["alertnames"] is None else tuple(row["alertnames"]),
        )
        for row in rows
    ]


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


async def backlog(connection: Connection) -> Backlog:
    """The alerts in records not yet expanded (replays of stored ones included)."""
    row = await connection.fetchrow(
        "SELECT coalesce(sum(alerts), 0) AS waiting, min(received_at) AS oldest FROM intake_log"
    )
    assert row is not None  # an aggregate: always one row
    return Backlog(row["waiting"], row["oldest"])
