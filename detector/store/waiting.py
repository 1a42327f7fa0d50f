"""What waits for the engine, and since when (``stormwatch_signals_waiting`` and
``stormwatch_oldest_unprocessed_signal_age_seconds``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from detector.store.connection import Connection

Queue = Literal["pending_signals", "group_backlog"]
"""The tables where stored signals wait for the engine, each keyed by ``signal_id``."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """Alerts waiting for the engine: how many, and when the longest-waiting one arrived."""

    waiting: int = 0
    oldest: datetime | None = None

    def __add__(self, other: Backlog) -> Backlog:
        arrivals = [at for at in (self.oldest, other.oldest) if at is not None]
        return Backlog(self.waiting + other.waiting, min(arrivals, default=None))


async def waiting_in(connection: Connection, queue: Queue) -> Backlog:
    """The signals waiting in ``queue``: the engine's queue (``signals``, retries included) or
    group backlogs (``backlog``). Both are ordered like arrival, so the longest-waiting signal
    is the first id."""
    row = await connection.fetchrow(
        f"""SELECT (SELECT count(*) FROM {queue}) AS waiting,
                  (SELECT s.received_at FROM {queue} q JOIN signals s ON s.id = q.signal_id
                   ORDER BY q.signal_id LIMIT 1) AS oldest"""
    )
    return Backlog(row["waiting"], row["oldest"]) if row else Backlog()
