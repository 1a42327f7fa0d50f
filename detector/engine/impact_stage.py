"""Engine stage: refresh each measured incident's business impact every minute.

A refresh timer is claimed like every timer (``FOR UPDATE SKIP LOCKED`` with a lease). The
incident is read, Prometheus asked outside any transaction (it may be slow), then the sample,
the timeline line and the next refresh are written under the incident's row lock, and the
timer marked fired, in one transaction. The refresh after the incident resolved measures it at
its resolution, once, and schedules no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from detector.domain.impact import ImpactSample, ImpactStatus, Rates, estimate
from detector.domain.model import Incident, Timer, TimerKind, TimerSpec
from detector.engine.impact import impact_spec
from detector.engine.prometheus_api import PrometheusApi, Reading
from detector.engine.stage import CycleContext, Lane
from detector.ruleset.impact_rules import Baseline, ImpactSpec
from detector.ruleset.rules import RuleSet
from detector.service.metrics import Metrics
from detector.store import impact as impact_store
from detector.store import incidents as store
from detector.store import timers
from detector.store.connection import Connection
from detector.store.timeline import add_timeline

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=60)
EVERY = timedelta(minutes=1)
WEEK = timedelta(weeks=1)
NO_PROMETHEUS = "no Prometheus configured (set STORMWATCH_PROMETHEUS_URL)"


class ImpactOutcome(StrEnum):
    """What a refresh did (the ``outcome`` stored on its timer)."""

    MEASURED = "measured"
    UNKNOWN = "unknown"
    FINAL = "final"
    NOT_CONFIGURED = "not_configured"
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class ImpactBatch:
    """The refreshes one pass made, and how many failed (retried after their lease)."""

    outcomes: list[ImpactOutcome]
    failed: int = 0

    @property
    def busy(self) -> bool:
        """True when refreshes ran."""
        return bool(self.outcomes)

    def record(self, metrics: Metrics) -> None:
        """Count the failed refreshes (each is retried once its lease ends)."""
        if self.failed:
            metrics.engine_errors.labels(ImpactStage.name).inc(self.failed)


class _LeaseLost(Exception):
    """Another replica took the timer over; this transaction must not commit."""


class ImpactStage:
    """The cycle's stage that measures impact; ``api`` None when no Prometheus is configured
    (every measured incident's impact is then unknown, saying so)."""

    name = "impact"
    lane = Lane.UPKEEP

    def __init__(self, api: PrometheusApi | None, every: timedelta = EVERY) -> None:
        self._api = api
        self._every = every

    async def run(self, context: CycleContext) -> ImpactBatch:
        """Refresh what is due now."""
        async with context.pool.acquire() as connection:
            claimed = await timers.claim_due(
                connection, context.owner, context.now, LEASE, 50, impact=True
            )
        outcomes = []
        failed = 0
        for timer in claimed:
            try:
                outcome = await self._refresh(context, timer)
            except _LeaseLost:
                continue
            except Exception:
                failed += 1
                log.exception("impact.refresh_failed", timer=timer.id)
                continue
            outcomes.append(outcome)
        return ImpactBatch(outcomes, failed)

    async def _refresh(self, context: CycleContext, timer: Timer) -> ImpactOutcome:
        rules, now = context.routes.rules, context.now
        incident_id = timer.incident_id
        async with context.pool.acquire() as connection, connection.transaction():
            incident = (
                None if incident_id is None else await store.lock_incident(connection, incident_id)
            )
            previous = (
                [] if incident_id is None else await impact_store.samples(connection, incident_id)
            )
        spec = None if incident is None else impact_spec(rules, incident.rule, incident.component)
        sample = None
        if incident is not None and spec is not None and _still_to_measure(incident, previous):
            sample = await self._measure(spec, incident, min(now, incident.resolved_at or now))
        async with context.pool.acquire() as connection, connection.transaction():
            outcome = await self._record(connection, rules, timer, sample, now)
            if not await timers.mark_fired(connection, timer.id, context.owner, outcome, now):
                raise _LeaseLost
        return outcome

    async def _measure(self, spec: ImpactSpec, incident: Incident, at: datetime) -> ImpactSample:
        if self._api is None:
            return ImpactSample(at, None, unknown_reason=NO_PROMETHEUS)
        orders = await self._rates(spec.orders, spec.baseline, incident, at)
        if isinstance(orders, str):
            return ImpactSample(at, None, unknown_reason=f"orders: {orders}")
        revenue = None
        if spec.revenue is not None:
            measured = await self._rates(spec.revenue, spec.baseline, incident, at)
            revenue = measured if isinstance(measured, Rates) else None
        return ImpactSample(at, orders, revenue)

    async def _rates(
        self, query: str, baseline: Baseline, incident: Incident, at: datetime
    ) -> Rates | str:
        """The rate now and its baseline, or why either is missing."""
        assert self._api is not None
        current = await self._api.value(query, at)
        if baseline is Baseline.WEEK:
            before = await self._api.value(query, at - WEEK)
        else:
            before = await self._api.value(f"avg_over_time(({query})[1h:5s])", incident.opened_at)
        if current.value is None:
            return _why(current)
        if before.value is None:
            return f"baseline ({baseline.value}): {_why(before)}"
        return Rates(current.value, before.value)

    async def _record(
        self,
        connection: Connection,
        rules: RuleSet,
        timer: Timer,
        sample: ImpactSample | None,
        now: datetime,
    ) -> ImpactOutcome:
        incident_id = timer.incident_id
        incident = (
            None if incident_id is None else await store.lock_incident(connection, incident_id)
        )
        if incident is None or incident_id is None:
            return ImpactOutcome.NOTHING
        if impact_spec(rules, incident.rule, incident.component) is None:
            return ImpactOutcome.NOT_CONFIGURED
        earlier = await impact_store.samples(connection, incident_id)
        if sample is not None:
            await impact_store.add_sample(connection, incident_id, sample)
        after = estimate(incident.opened_at, [*earlier, *([sample] if sample else [])])
        if not incident.is_open:
            await add_timeline(connection, incident_id, [("impact.final", now, after.as_json())])
            return ImpactOutcome.FINAL
        next_refresh = TimerSpec(TimerKind.IMPACT_REFRESH, now + self._every)
        await timers.add_incident_timers(connection, incident_id, incident.epoch, [next_refresh])
        if sample is None:
            return ImpactOutcome.NOTHING
        before = estimate(incident.opened_at, earlier).status if earlier else None
        entry = _timeline_entry(before, after.as_json(), sample.unknown_reason)
        if entry is not None:
            await add_timeline(connection, incident_id, [(entry[0], now, entry[1])])
        return ImpactOutcome.UNKNOWN if sample.orders is None else ImpactOutcome.MEASURED


def _still_to_measure(incident: Incident, previous: list[ImpactSample]) -> bool:
    """Open incidents always; a resolved one until it was measured at its resolution."""
    if incident.is_open or incident.resolved_at is None:
        return True
    return not previous or previous[-1].at < incident.resolved_at


def _timeline_entry(
    before: ImpactStatus | None, after: dict[str, Any], reason: str | None
) -> tuple[str, dict[str, Any]] | None:
    """What the timeline keeps of an open incident's refresh: each change between known and
    unknown (not every minute's numbers; the final figures are kept at resolution)."""
    if reason is not None and before is not ImpactStatus.UNKNOWN:
        return "impact.unknown", {"reason": reason}
    if reason is None and before is not ImpactStatus.ESTIMATED:
        return "impact.estimated", after
    return None


def _why(reading: Reading) -> str:
    return reading.reason or "no value"
