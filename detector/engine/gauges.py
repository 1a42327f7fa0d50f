"""The gauges the cycle refreshes: open incidents, and how far behind the engines are.

At most once a second: cycles under load run back to back, and a count per cycle would be work
no scrape ever sees. The backlog gauges feed the alerts that watch Stormwatch itself
(``deploy/prometheus/alerts/stormwatch.yml``): what waits for the engines and for how long,
whichever replica's engine should have taken it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from detector.domain.model import IncidentState
from detector.engine.stage import CycleContext, Lane
from detector.service.metrics import Metrics
from detector.store import intake_log, outbox, queries
from detector.store.connection import UNAVAILABLE
from detector.store.waiting import waiting_in

REFRESH_EVERY_SECONDS = 1.0
_OPEN_STATES = (IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED)


@dataclass(frozen=True, slots=True)
class GaugeReading:
    """What this cycle counted, or nothing when it did not count."""

    open_counts: Mapping[str, int] | None = None
    waiting: int = 0
    oldest_unprocessed_age: float = 0.0
    oldest_unsent_page_age: float = 0.0

    @property
    def busy(self) -> bool:
        """Never: counting finds no work."""
        return False

    def record(self, metrics: Metrics) -> None:
        """Set the gauges, zero for states with no open incident."""
        if self.open_counts is None:
            return
        for state in _OPEN_STATES:
            metrics.incidents_open.labels(state).set(self.open_counts.get(state, 0))
        metrics.signals_waiting.set(self.waiting)
        metrics.oldest_unprocessed_age.set(self.oldest_unprocessed_age)
        metrics.oldest_unsent_page_age.set(self.oldest_unsent_page_age)


class GaugeStage:
    """Counts for ``stormwatch_incidents_open``, ``stormwatch_signals_waiting`` and the two
    oldest-age gauges; a database that cannot answer leaves them as they were."""

    name = "gauges"
    lane = Lane.UPKEEP

    def __init__(self) -> None:
        self._refreshed = -REFRESH_EVERY_SECONDS

    async def run(self, context: CycleContext) -> GaugeReading:
        """Count, if the last count is a second old."""
        if time.monotonic() - self._refreshed < REFRESH_EVERY_SECONDS:
            return GaugeReading()
        self._refreshed = time.monotonic()
        now = context.now
        try:
            counts = await queries.open_counts(context.pool)
            async with context.pool.acquire() as connection:
                backlog = await intake_log.backlog(connection)
                backlog += await waiting_in(connection, "pending_signals")
                backlog += await waiting_in(connection, "group_backlog")
                page_due = await outbox.oldest_due(connection, now)
        except UNAVAILABLE:
            return GaugeReading()
        return GaugeReading(
            counts,
            backlog.waiting,
            _seconds_since(backlog.oldest, now),
            _seconds_since(page_due, now),
        )


def _seconds_since(then: datetime | None, now: datetime) -> float:
    return 0.0 if then is None else max((now - then).total_seconds(), 0.0)
