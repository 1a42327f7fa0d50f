"""The statistics stage: keeps the planner's picture of the storm-grown tables current
(``store.statistics`` says which, and why autovacuum is too late for them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog

from detector.engine.stage import CycleContext, Lane, Pace
from detector.service.metrics import Metrics
from detector.store import statistics

log = structlog.get_logger(__name__)
CHECK_EVERY = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Analyzed:
    """The tables counted afresh this cycle."""

    tables: tuple[str, ...] = ()

    @property
    def busy(self) -> bool:
        """Never: a count leaves nothing for the next cycle."""
        return False

    def record(self, metrics: Metrics) -> None:
        """Nothing to count: a count is logged."""


class StatisticsStage:
    """Looks every :data:`CHECK_EVERY` for grown tables and analyzes them."""

    name = "statistics"
    lane = Lane.UPKEEP

    def __init__(self) -> None:
        self._pace = Pace(CHECK_EVERY)

    async def run(self, context: CycleContext) -> Analyzed:
        """Analyze what grew, if the last look is old enough."""
        if not self._pace.due(context.now):
            return Analyzed()
        async with context.pool.acquire() as connection:
            tables = await statistics.refresh(connection)
        if tables:
            log.info("statistics.analyzed", tables=tables)
        return Analyzed(tuple(tables))
