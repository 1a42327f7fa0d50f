"""The contract every engine stage keeps, so the cycle runs them all one way.

A stage does one kind of work against the database each cycle and returns a report; the cycle
isolates each stage from the others' failures, times it and has its report count itself. Adding
a stage is a module with a class that has a ``name``, a ``lane`` and a ``run``, and one entry in
the cycle's list (``cycle.standard_stages``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import structlog

from detector.domain.model import Decision
from detector.ruleset.live import Routes
from detector.service.clock import Clock
from detector.service.metrics import Metrics
from detector.store.connection import Pool

log = structlog.get_logger(__name__)


class Lane(StrEnum):
    """Which of an engine's loops runs a stage. Each lane waits only on its own work, so a
    receiver that answers slowly, a Prometheus that hangs or a count over every open incident
    never holds up the stages that turn alerts into incidents and pages."""

    DETECT = "detect"
    """Signals, timers, notices: decisions, made against the database alone."""
    DELIVER = "deliver"
    """Sends what the decisions queued; woken as soon as a detecting stage found work."""
    UPKEEP = "upkeep"
    """The self-audit, retention, gauges, planner statistics, impact queries, the dead-man ping:
    at their own pace."""


@dataclass(slots=True)
class Pace:
    """When an upkeep stage works: its first run, then once ``every`` has passed on the
    engine's clock (a failed run waits its turn like one that went through)."""

    every: timedelta
    _next: datetime | None = field(default=None, init=False)

    def due(self, now: datetime) -> bool:
        """Whether to work at ``now``; if so, the next turn is ``every`` from now."""
        if self._next is not None and now < self._next:
            return False
        self._next = now + self.every
        return True


@dataclass(frozen=True, slots=True)
class CycleContext:
    """What a stage works with, taken just before it runs (a reload may swap the rules between
    two stages of one cycle)."""

    pool: Pool
    routes: Routes
    owner: str
    """This replica's name, on the leases it takes."""
    now: datetime
    rules_generation: int
    """Counts the rule sets this engine was told about (1 at start, when the rules may have
    been edited while no engine ran); a stage that must react to a change compares it."""
    clock: Clock
    """The engine's clock, for work that outlasts ``now``: lease renewals, outcomes recorded
    as they come."""
    detecting: bool = True
    """Whether this engine's detecting stages have run lately (the dead-man ping says so only
    while they do)."""
    ahead: bool = False
    """A quick pass while a storm is paced: the signal stage takes only the intake log records
    that may overtake the storm's (``signals.process_pending``)."""


class StageReport(Protocol):
    """What one run of a stage did."""

    @property
    def busy(self) -> bool:
        """True when the stage found work, so the next cycle should follow at once."""
        ...

    def record(self, metrics: Metrics) -> None:
        """Count what the stage did, including any parts of it that failed on their own."""
        ...


class Stage(Protocol):
    """One kind of engine work; ``name`` is its ``stage`` label on the engine's metrics."""

    @property
    def name(self) -> str:
        """The stage's label: constant, low-cardinality."""
        ...

    @property
    def lane(self) -> Lane:
        """The engine loop that runs it."""
        ...

    async def run(self, context: CycleContext) -> StageReport:
        """Do this cycle's share of the work; raising fails this stage alone."""
        ...


def record_decisions(metrics: Metrics, decisions: Iterable[Decision]) -> None:
    """Count (and log) the incidents that decisions opened and resolved."""
    for decision in decisions:
        incident = decision.incident
        if incident is None:
            continue
        if decision.opened:
            metrics.incidents_opened.labels(incident.rule, incident.severity).inc()
            log.info("incident.opened", rule=incident.rule, title=incident.title)
        if decision.resolved:
            metrics.incidents_resolved.labels(incident.rule, incident.severity).inc()
            log.info("incident.resolved", rule=incident.rule, title=incident.title)
