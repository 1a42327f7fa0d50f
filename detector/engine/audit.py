"""Engine stage: the self-audit. Every open incident must be on its way somewhere: an
unacknowledged one has its next escalation pending (or its chain is done), an acknowledged one
under an ``ack_timeout`` has that timer. A timer lost to a bug, a hand-edited database or a
restore is scheduled again, when it was due (or now), and the repair is recorded, logged and
counted.

The work is bounded: a pass every ``PASS_EVERY`` looks at a batch of the incidents audited
longest ago, each at most once a minute, so its cost follows the batch, not the number of open
incidents, and a busy engine's cycles are not each slowed by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog

from detector.domain.escalation import Repair, audit
from detector.engine.stage import CycleContext, Lane, Pace
from detector.service.metrics import Metrics
from detector.store import audit as audit_store
from detector.store import incidents as incident_store
from detector.store.pooled import pooled

log = structlog.get_logger(__name__)
EVERY = timedelta(minutes=1)
"""How often one incident is audited at most."""
BATCH = 50
PASS_EVERY = timedelta(seconds=2)
"""How often a pass runs at most (50 incidents each: 1,500 audited a minute)."""


@dataclass(frozen=True, slots=True)
class Repaired:
    """A timer the audit scheduled again."""

    incident_id: int
    repair: Repair


@dataclass(frozen=True, slots=True)
class AuditReport:
    """How many incidents one pass audited, and what it repaired."""

    audited: int = 0
    repaired: tuple[Repaired, ...] = ()

    @property
    def busy(self) -> bool:
        """True after a repair: a timer put back due now fires in the next cycle at once."""
        return bool(self.repaired)

    def record(self, metrics: Metrics) -> None:
        """Count the repairs by problem."""
        for repaired in self.repaired:
            metrics.audit_repairs.labels(repaired.repair.problem).inc()


class AuditStage:
    """The cycle's stage that audits open incidents (see the module's docstring)."""

    name = "audit"
    lane = Lane.UPKEEP

    def __init__(
        self, every: timedelta = EVERY, limit: int = BATCH, pass_every: timedelta = PASS_EVERY
    ) -> None:
        self._every = every
        self._limit = limit
        self._pace = Pace(pass_every)

    async def run(self, context: CycleContext) -> AuditReport:
        """Audit a batch of the incidents audited longest ago, in one transaction."""
        now = context.now
        if not self._pace.due(now):
            return AuditReport()
        repaired: list[Repaired] = []
        async with pooled(context.pool) as connection, connection.transaction():
            found = await audit_store.lock_unaudited(connection, now - self._every, self._limit)
            for subject in found:
                incident = subject.incident
                repair = audit(incident, subject.pending, now)
                if repair is not None and incident.id is not None:
                    await audit_store.repair(connection, incident, repair, now)
                    repaired.append(Repaired(incident.id, repair))
            ids = [s.incident.id for s in found if s.incident.id is not None]
            await incident_store.mark_audited(connection, ids, now)
        for item in repaired:
            log.warning(
                "audit.repaired",
                incident=item.incident_id,
                problem=item.repair.problem,
                timer=item.repair.timer.kind,
                due_at=item.repair.timer.due_at.isoformat(),
            )
        return AuditReport(len(found), tuple(repaired))
