"""The first stage of a cycle: bring the stored timers in line with rules that changed.

After a rules reload (and at start: the rules may have been edited while no engine ran), the
escalations that windows deferred are made due now, to be decided again by the timer stage
rather than wait for the ends those windows had before (``timers.release_deferred``): a window
deleted or cut short must not keep pages back. And every group whose rule lost its condition
gets a condition check now (``conditions.recheck_orphans``), which lets what the condition kept
waiting join the incident.

It runs before the signal stage: escalations that stage defers under the new rules are already
right and must not be released again.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from detector.engine.stage import CycleContext, Lane
from detector.service.metrics import Metrics
from detector.store import conditions as condition_store
from detector.store import timers as timers_table

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RulesSettled:
    """What settling a change of rules did; all zero when the rules had not changed."""

    escalations_released: int = 0
    conditions_rechecked: int = 0
    failed: bool = False

    @property
    def busy(self) -> bool:
        """Never on its own: what it made due, the timer stage fires in the same cycle."""
        return False

    def record(self, metrics: Metrics) -> None:
        """Count a failure as the timer error it has always been counted as."""
        if self.failed:
            metrics.engine_errors.labels("timers").inc()


class RulesChangeStage:
    """Settles each change of rules once (``CycleContext.rules_generation``); a failure is
    counted and logged, and settling is tried again in the next cycle."""

    name = "rules_change"
    lane = Lane.DETECT

    def __init__(self) -> None:
        self._settled_generation = 0

    async def run(self, context: CycleContext) -> RulesSettled:
        """Settle the rules in force now, if they changed since the last settling."""
        generation = context.rules_generation
        if generation == self._settled_generation:
            return RulesSettled()
        try:
            settled = await _settle(context)
        except Exception:
            log.exception("engine.rules_change_failed")
            return RulesSettled(failed=True)
        self._settled_generation = generation
        log.info(
            "engine.rules_changed",
            escalations_released=settled.escalations_released,
            conditions_rechecked=settled.conditions_rechecked,
        )
        return settled


async def _settle(context: CycleContext) -> RulesSettled:
    rules = context.routes.rules
    conditioned = [name for name, rule in rules.rules.items() if rule.has_condition]
    async with context.pool.acquire() as connection, connection.transaction():
        released = await timers_table.release_deferred(connection, context.now)
        rechecked = await condition_store.recheck_orphans(connection, conditioned, context.now)
    return RulesSettled(released, rechecked)
