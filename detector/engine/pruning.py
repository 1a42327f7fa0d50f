"""The retention stage: once an hour, drop engine bookkeeping older than the retention period
(``store.retention`` says what goes; incidents and timelines stay)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from detector.engine.stage import CycleContext, Lane, Pace
from detector.service.metrics import Metrics
from detector.store import retention

log = structlog.get_logger(__name__)
PRUNE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PruneReport:
    """Rows removed per table; empty when no pruning was due."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """Never: pruning leaves nothing for the next cycle to follow up at once."""
        return False

    def record(self, metrics: Metrics) -> None:
        """Nothing to count: pruning is logged."""


class PruneStage:
    """Prunes at the first cycle, then every :data:`PRUNE_EVERY`; a failed run waits for the
    next turn like a successful one."""

    name = "retention"
    lane = Lane.UPKEEP

    def __init__(self, keep: timedelta) -> None:
        self._keep = keep
        self._pace = Pace(PRUNE_EVERY)

    async def run(self, context: CycleContext) -> PruneReport:
        """Prune if it is time."""
        now = context.now
        if not self._pace.due(now):
            return PruneReport()
        async with context.pool.acquire() as connection:
            pruned = await retention.prune(connection, now - self._keep)
        log.info("retention.pruned", **pruned.counts)
        return PruneReport(pruned.counts)
