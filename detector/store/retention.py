"""Pruning what only the engine needed: fired timers, finished deliveries, and signals that no
open incident holds, once older than the retention period. Incidents and timelines are kept.

Each table's own module says what of it may go; this one only paces the deletes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from detector.store import outbox, signals, subscriber_outbox, timers
from detector.store.connection import Connection

_BATCH = 10_000

_PRUNERS: dict[str, Callable[[Connection, datetime, int], Awaitable[int]]] = {
    "timers": timers.prune_fired,
    "outbox": outbox.prune_finished,
    "signals": signals.prune_unreferenced,
    "subscriber_outbox": subscriber_outbox.prune_finished,
}
"""Per table, the owner's delete of up to a given number of rows older than a cutoff."""


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows removed per table."""

    counts: dict[str, int]


async def prune(connection: Connection, cutoff: datetime) -> Pruned:
    """Delete rows older than ``cutoff``, in bounded batches so no lock is held for long."""
    counts: dict[str, int] = {}
    for table, prune_batch in _PRUNERS.items():
        total = 0
        while True:
            deleted = await prune_batch(connection, cutoff, _BATCH)
            total += deleted
            if deleted < _BATCH:
                break
        counts[table] = total
    return Pruned(counts)
