"""The open-incidents gauge, refreshed as a stage of the cycle.

At most once a second: cycles under load run back to back, and a count per cycle would be work
no scrape ever sees.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from detector.domain.model import IncidentState
from detector.engine.stage import CycleContext
from detector.service.metrics import Metrics
from detector.store import queries
from detector.store.connection import DatabaseError

REFRESH_EVERY_SECONDS = 1.0
_OPEN_STATES = (IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED)


@dataclass(frozen=True, slots=True)
class GaugeReading:
    """Open incidents per state, or None when this cycle did not count them."""

    counts: Mapping[str, int] | None = None

    @property
    def busy(self) -> bool:
        """Never: counting finds no work."""
        return False

    def record(self, metrics: Metrics) -> None:
        """Set the gauge, zero for states with no open incident."""
        if self.counts is None:
            return
        for state in _OPEN_STATES:
            metrics.incidents_open.labels(state).set(self.counts.get(state, 0))


class OpenIncidentsGauge:
    """Counts open incidents for ``stormwatch_incidents_open``; a database that cannot answer
    leaves the gauge as it was until the next refresh."""

    name = "open_incidents"

    def __init__(self) -> None:
        self._refreshed = -REFRESH_EVERY_SECONDS

    async def run(self, context: CycleContext) -> GaugeReading:
        """Count, if the last count is a second old."""
        if time.monotonic() - self._refreshed < REFRESH_EVERY_SECONDS:
            return GaugeReading()
        self._refreshed = time.monotonic()
        try:
            return GaugeReading(await queries.open_counts(context.pool))
        except (DatabaseError, OSError):
            return GaugeReading()
