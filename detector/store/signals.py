"""The signals table, every alert once per (occurrence, status) as expanded from the intake
log, and pending_signals, the queue of those the engine has still to process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.domain.model import AlertStatus, Signal, Source
from detector.store.connection import Connection, rows_affected


@dataclass(frozen=True, slots=True)
class InsertResult:
    """How many signals were new and how many were replays of stored ones; ``unmatched`` of the
    new ones were stored flagged as matching no rule, which is all the processing they need."""

    inserted: int
    duplicates: int
    unmatched: int = 0

    def __add__(self, other: InsertResult) -> InsertResult:
        return InsertResult(
            self.inserted + other.inserted,
            self.duplicates + other.duplicates,
            self.unmatched + other.unmatched,
        )


SignalKey = tuple[str, str, datetime, str]


def signal_key(signal: Signal) -> SignalKey:
    """What a stored signal is unique by: (source, occurrence, status)."""
    return (signal.source, signal.fingerprint, signal.starts_at, signal.status)


@dataclass(frozen=True, slots=True)
class Holder:
    """An open incident that holds a signal's occurrence, under a rule that still exists."""

    rule: str
    group_key: str
    group_labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class PendingSignal:
    """A stored signal the engine has not processed yet, with the open incidents holding it.

    ``retry_rules`` is set when the signal is queued again because applying it failed: only
    those rules get it on the next try (``attempts`` so far).
    """

    id: int
    signal: Signal
    holders: tuple[Holder, ...] = ()
    attempts: int = 0
    retry_rules: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """A signal to queue again after a failed try: for ``rules``, not before ``not_before``."""

    signal_id: int
    attempts: int
    rules: frozenset[str]
    not_before: datetime | None


def holders(value: list[list[Any]] | None) -> tuple[Holder, ...]:
    """Holders from the JSON array of [rule, group key, group labels] the statements return."""
    return tuple(Holder(rule, key, labels) for rule, key, labels in value or ())


def holders_sql(row: str, rules: str) -> str:
    """SQL: the open incidents of live ``rules`` holding ``row``'s occurrence, for ``holders``."""
    return f"""CASE WHEN EXISTS (SELECT 1 FROM incidents WHERE state <> 'resolved') THEN (
             SELECT json_agg(json_build_array(i.rule, i.group_key, i.group_labels))
             FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id
             WHERE ia.fingerprint = {row}.fingerprint AND ia.starts_at = {row}.starts_at
               AND i.state <> 'resolved' AND i.rule = ANY({rules}::text[])) END"""


def _dedup(signals: Sequence[Signal]) -> dict[SignalKey, Signal]:
    """The last copy of each (source, occurrence, status), in one global key order.

    One INSERT … ON CONFLICT DO UPDATE statement cannot touch the same row twice, and
    concurrent commits must lock rows in one global order, or two batches holding the same
    replayed alerts in opposite orders deadlock (PostgreSQL aborts one after a second).
    """
    latest: dict[SignalKey, Signal] = {}
    for signal in signals:
        latest[signal_key(signal)] = signal
    return {key: latest[key] for key in sorted(latest)}


_STORE_SIGNALS = f"""
    -- The batch: one JSON array per column ($1…$12), zipped back into rows.
    WITH listed AS MATERIALIZED (
      SELECT * FROM ROWS FROM (
        json_array_elements_text($1), json_array_elements_text($2),
        json_array_elements_text($3), json_array_elements_text($4),
        json_array_elements_text($5), json_array_elements_text($6),
        json_array_elements($7), json_array_elements($8),
        json_array_elements_text($9), json_array_elements_text($10),
        json_array_elements_text($11), json_array_elements_text($12))
      AS r(source, name, fingerprint, status, starts_at, ends_at, labels, annotations,
           group_key, receiver, received_at, unmatched)),
    -- An alert an open incident of a live rule ($14) holds is never unmatched.
    batch AS MATERIALIZED (
      SELECT source, name, fingerprint, status, starts_at, ends_at, labels, annotations,
             group_key, receiver, received_at,
             l.unmatched::boolean AND NOT (
               EXISTS (SELECT 1 FROM incidents WHERE state <> 'resolved')
               AND EXISTS (
                 SELECT 1 FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id
                 WHERE ia.fingerprint = l.fingerprint
                   AND ia.starts_at = l.starts_at::timestamptz
                   AND i.state <> 'resolved' AND i.rule = ANY($14::text[]))
             ) AS unmatched
      FROM listed l),
    -- Rows stored flagged unmatched that a rule routes now.
    adopted AS (
      SELECT s.id FROM signals s JOIN batch b
        ON (s.fingerprint, s.starts_at, s.status, s.source)
           = (b.fingerprint, b.starts_at::timestamptz, b.status, b.source)
      WHERE s.unmatched AND NOT b.unmatched),
    -- Watched signals: new rows, or a replay refreshing last_received_at (and unflagging).
    refreshed AS (
      INSERT INTO signals (source, name, fingerprint, status, starts_at, ends_at, labels,
                           annotations, group_key, receiver, received_at,
                           last_received_at, unmatched)
      SELECT source, name, fingerprint, status, starts_at::timestamptz,
             ends_at::timestamptz, labels, annotations, group_key, receiver,
             received_at::timestamptz, received_at::timestamptz, false
      FROM batch WHERE NOT unmatched
      ON CONFLICT (fingerprint, starts_at, status, source)
        DO UPDATE SET last_received_at = EXCLUDED.last_received_at, unmatched = false
      RETURNING id, source, fingerprint, starts_at, status, (xmax = 0) AS inserted),
    -- Unmatched signals: new rows stored flagged; a replay writes nothing.
    kept AS (
      INSERT INTO signals (source, name, fingerprint, status, starts_at, ends_at, labels,
                           annotations, group_key, receiver, received_at,
                           last_received_at, unmatched)
      SELECT source, name, fingerprint, status, starts_at::timestamptz,
             ends_at::timestamptz, labels, annotations, group_key, receiver,
             received_at::timestamptz, received_at::timestamptz, true
      FROM batch WHERE unmatched
      ON CONFLICT (fingerprint, starts_at, status, source) DO NOTHING
      RETURNING id),
    fresh AS (
      SELECT * FROM refreshed WHERE inserted OR id IN (SELECT id FROM adopted)),
    queued AS (
      INSERT INTO pending_signals (signal_id) SELECT id FROM fresh WHERE $13)
    -- First row (id 0): how many unmatched rows were stored. Then the fresh rows, each with
    -- the open incidents of live rules that hold it.
    SELECT 0::bigint AS id, NULL AS source, NULL AS fingerprint,
           NULL::timestamptz AS starts_at, NULL AS status, NULL::boolean AS inserted,
           count(*) AS kept, NULL::json AS holders FROM kept
    UNION ALL
    SELECT id, source, fingerprint, starts_at, status, inserted, 0, {holders_sql("f", "$14")}
    FROM fresh f
    ORDER BY id"""
"""Insert new signals (one JSON array per column) and queue them if asked. Two inserts, because
replays differ: one of a watched alert refreshes ``last_received_at``, one of an unmatched alert
is skipped without even locking its row (an ON CONFLICT … DO UPDATE … WHERE would lock it).
New unmatched rows are only counted (first row, id 0): being stored flagged is all they need.
A watched replay of a row stored flagged unmatched (the rules changed since) unflags it and is
returned with the new ones; every part of the statement sees the rows as they were before it,
so ``adopted`` finds them. An alert an open incident holds is never unmatched (the rules may have
changed since it was routed); new rows come back with the incidents holding them. The
uncorrelated ``EXISTS`` on open incidents runs once per statement: while no incident is open,
no occurrence is looked up."""


async def insert_signals(
    connection: Connection,
    signals: Sequence[Signal],
    *,
    unmatched: Callable[[Signal], bool] | None = None,
    queue: bool = True,
    live_rules: Sequence[str] = (),
) -> tuple[InsertResult, list[PendingSignal]]:
    """Store signals; a replayed occurrence only refreshes ``last_received_at``.

    Returns the counts and the new signals still to process, with their ids. With ``queue``
    those also go on the pending queue for a later engine cycle; without it the caller
    processes them in the same transaction. ``unmatched`` (no rule routes the signal) is stored
    with each new row, which is then done with: it is counted, not returned or queued. A replay
    of such a signal writes nothing, since only alerts a rule watches need their last arrival
    (silence checks, heartbeats, reconciliation), unless a rule routes it now: then the stored
    row is unflagged and returned with the new ones (it still counts as a duplicate). A signal
    whose occurrence an open incident of one of ``live_rules`` holds is never stored unmatched,
    and new signals come back with those incidents (``PendingSignal.holders``).

    The batch travels as one JSON array per column, zipped back into rows by ``ROWS FROM``:
    PostgreSQL parses flat arrays far faster than an array of row objects (whose nested labels
    it would parse twice), and asyncpg's own array encoding checks every element in Python.
    """
    unique = _dedup(signals)
    batch = list(unique.values())
    flags = [unmatched is not None and unmatched(s) for s in batch]
    stored = await connection.fetch(
        _STORE_SIGNALS,
        [s.source for s in batch],
        [s.name for s in batch],
        [s.fingerprint for s in batch],
        [s.status for s in batch],
        [s.starts_at for s in batch],
        [s.ends_at for s in batch],
        [s.labels for s in batch],
        [s.annotations for s in batch],
        [s.group_key for s in batch],
        [s.receiver for s in batch],
        [s.received_at for s in batch],
        flags,
        queue,
        list(live_rules),
    )
    kept = stored[0]["kept"]
    new = [
        PendingSignal(
            row["id"],
            unique[(row["source"], row["fingerprint"], row["starts_at"], row["status"])],
            holders(row["holders"]),
        )
        for row in stored[1:]
    ]
    inserted = kept + sum(row["inserted"] for row in stored[1:])
    return InsertResult(inserted, len(signals) - inserted, kept), new


SIGNAL_COLUMNS = """s.id, s.source, s.name, s.fingerprint, s.status, s.starts_at, s.ends_at,
                    s.labels, s.annotations, s.group_key, s.receiver, s.received_at"""
"""The columns of ``signals s`` that ``signal_from_row`` reads, with the id."""


_LOCK_PENDING = f"""
    SELECT {SIGNAL_COLUMNS}, p.attempts, p.retry_rules, {holders_sql("s", "$2")} AS holders
    FROM pending_signals p JOIN signals s ON s.id = p.signal_id
    WHERE p.not_before IS NULL OR p.not_before <= $3
    ORDER BY p.signal_id LIMIT $1 FOR UPDATE OF p SKIP LOCKED"""
"""Due queued signals with the open incidents of live rules ($2) holding them, as in
``_STORE_SIGNALS``."""


async def lock_pending(
    connection: Connection, limit: int, now: datetime, live_rules: Sequence[str] = ()
) -> list[PendingSignal]:
    """The oldest unprocessed signals due by ``now``, in arrival order, locked for this
    transaction, with the open incidents of ``live_rules`` that hold them."""
    rows = await connection.fetch(_LOCK_PENDING, limit, list(live_rules), now)
    return [
        PendingSignal(
            row["id"],
            signal_from_row(row),
            holders(row["holders"]),
            row["attempts"],
            None if row["retry_rules"] is None else frozenset(row["retry_rules"]),
        )
        for row in rows
    ]


def signal_from_row(row: Any) -> Signal:
    """Rebuild a Signal from its stored row."""
    return Signal(
        source=Source(row["source"]),
        name=row["name"],
        fingerprint=row["fingerprint"],
        status=AlertStatus(row["status"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        labels=row["labels"],
        annotations=row["annotations"],
        received_at=row["received_at"],
        group_key=row["group_key"],
        receiver=row["receiver"],
    )


async def mark_processed(
    connection: Connection,
    outcomes: dict[int, str],
    queued: Sequence[int],
    retries: Sequence[Retry] = (),
) -> None:
    """Take the ``queued`` signals off the queue, flag the ones no rule matched (new signals
    from the intake log were flagged when stored), and queue ``retries`` (again, or for the
    first time for new signals)."""
    again = {retry.signal_id for retry in retries}
    done = [i for i in queued if i not in again]
    if done:
        await connection.execute(
            "DELETE FROM pending_signals WHERE signal_id = ANY($1::bigint[])", done
        )
    unmatched = [i for i in queued if outcomes.get(i) == "unmatched"]
    if unmatched:
        await connection.execute(
            "UPDATE signals SET unmatched = true WHERE id = ANY($1::bigint[])", unmatched
        )
    if retries:
        await connection.executemany(
            """INSERT INTO pending_signals (signal_id, attempts, retry_rules, not_before)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (signal_id) DO UPDATE SET attempts = EXCLUDED.attempts,
                 retry_rules = EXCLUDED.retry_rules, not_before = EXCLUDED.not_before""",
            [(r.signal_id, r.attempts, sorted(r.rules), r.not_before) for r in retries],
        )


async def unmatched(connection: Connection, limit: int) -> list[dict[str, Any]]:
    """Recent signals no rule matched, newest first, for the API."""
    rows = await connection.fetch(
        """SELECT s.id, s.source, s.name, s.fingerprint, s.status, s.starts_at, s.labels,
                  s.annotations, s.received_at
           FROM signals s WHERE s.unmatched ORDER BY s.id DESC LIMIT $1""",
        limit,
    )
    return [dict(row) for row in rows]


async def lock_strays(connection: Connection, fingerprints: Sequence[str]) -> list[PendingSignal]:
    """Stored firing alerts flagged unmatched, of these fingerprints, not resolved since;
    locked in the order the engine locks signals (by source, fingerprint, startsAt, status),
    so adopting them beside an engine cycle cannot deadlock."""
    rows = await connection.fetch(
        f"""SELECT {SIGNAL_COLUMNS}
           FROM signals s
           WHERE s.fingerprint = ANY($1::text[]) AND s.unmatched
             AND s.status = 'firing' AND s.source = 'alertmanager'
             AND NOT EXISTS (
               SELECT 1 FROM signals r
               WHERE r.fingerprint = s.fingerprint AND r.starts_at = s.starts_at
                 AND r.status = 'resolved' AND r.source = s.source)
           ORDER BY s.source, s.fingerprint, s.starts_at, s.status
           FOR UPDATE OF s""",
        list(fingerprints),
    )
    return [PendingSignal(row["id"], signal_from_row(row)) for row in rows]


async def adopt(connection: Connection, signal_ids: Sequence[int]) -> None:
    """Unflag stored unmatched signals a rule routes now and queue them for the engine."""
    if not signal_ids:
        return
    await connection.execute(
        "UPDATE signals SET unmatched = false WHERE id = ANY($1::bigint[])", signal_ids
    )
    await connection.execute(
        """INSERT INTO pending_signals (signal_id) SELECT unnest($1::bigint[])
           ON CONFLICT DO NOTHING""",
        signal_ids,
    )


async def prune_unreferenced(connection: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` signals last received before ``cutoff`` that are neither queued
    nor held by an open incident; returns how many."""
    result: str = await connection.execute(
        """DELETE FROM signals WHERE id IN (
             SELECT s.id FROM signals s
             WHERE s.last_received_at < $1
               AND NOT EXISTS (SELECT 1 FROM pending_signals p WHERE p.signal_id = s.id)
               AND NOT EXISTS (
                 SELECT 1 FROM incident_alerts a JOIN incidents i ON i.id = a.incident_id
                 WHERE a.fingerprint = s.fingerprint AND a.starts_at = s.starts_at
                   AND i.state <> 'resolved')
             LIMIT $2)""",
        cutoff,
        limit,
    )
    return rows_affected(result)
