"""The engine cycle every replica runs: pending signals → due timers → outbox deliveries.

``run_once`` is one cycle (tests call it after moving a fake clock); ``run`` repeats it until
asked to stop, finishing the cycle in progress, and wakes early when intake commits new signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import structlog

from detector.domain.model import Decision, Source
from detector.engine import delivery as delivery_stage
from detector.engine import signals as signal_stage
from detector.engine import timers as timer_stage
from detector.engine.delivery import Deliverer, DeliveryOutcome
from detector.engine.signals import SignalBatchResult
from detector.engine.timers import FiredTimer
from detector.ruleset.live import Routes
from detector.ruleset.rules import RuleSet
from detector.service.clock import Clock
from detector.service.metrics import Metrics
from detector.store import conditions as condition_store
from detector.store import intake_log, outbox, retention
from detector.store import signals as signals_table
from detector.store import timers as timers_table

log = structlog.get_logger(__name__)
PRUNE_EVERY = timedelta(hours=1)
GAUGE_EVERY_SECONDS = 1.0
STALLED_AFTER_SECONDS = 60.0


@dataclass
class CycleReport:
    """What one cycle did, for tests and logs."""

    signals: SignalBatchResult = field(default_factory=SignalBatchResult)
    timers: list[FiredTimer] = field(default_factory=list)
    deliveries: list[DeliveryOutcome] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """True when the cycle found work, so the next one should follow at once."""
        return bool(self.signals.busy or self.timers or self.deliveries)


def pause_after(report: CycleReport, elapsed: float, window: float) -> float:
    """Seconds to wait before the next cycle after one that found work.

    Zero after a full batch (a backlog is waiting). Otherwise what is left of ``window`` since
    the cycle started: under a steady stream of webhooks the engine would otherwise run one
    small cycle per intake commit, and each cycle's fixed cost (transaction, queue and timer
    queries) would dominate; waiting lets a batch build up, at most ``window`` of extra latency.
    """
    if report.signals.full:
        return 0.0
    return max(window - elapsed, 0.0)


class Engine:
    """Runs the stages against one database; any number of replicas may run side by side."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        routes: Callable[[], Routes],
        deliverer: Deliverer,
        clock: Clock,
        metrics: Metrics,
        interval: timedelta = timedelta(seconds=1),
        owner: str | None = None,
        retention: timedelta = timedelta(days=30),
        batch_window: timedelta = timedelta(0),
    ) -> None:
        self._pool = pool
        self._routes = routes
        self._deliverer = deliverer
        self._clock = clock
        self._metrics = metrics
        self._interval = interval.total_seconds()
        self._batch_window = batch_window.total_seconds()
        self.owner = owner or f"engine-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._retention = retention
        self._next_prune = clock.now()
        self._gauge_refreshed = -GAUGE_EVERY_SECONDS
        self._rules_changed = True  # the rules may have been edited while no engine ran

    def wake(self) -> None:
        """Ask for a cycle now (new signals were committed)."""
        self._wake.set()

    def rules_changed(self) -> None:
        """After a rules reload, have the next cycle retry the escalations windows hold (rather
        than wait for the ends those windows had before, see ``timers.release_held``) and check
        the groups whose rule lost its condition (``condition_store.recheck_orphans``)."""
        self._rules_changed = True
        self._wake.set()

    def stop(self) -> None:
        """Stop after the cycle in progress."""
        self._stopping.set()
        self._wake.set()

    async def run_once(self) -> CycleReport:
        """One cycle of every stage, each stage isolated from the others' failures."""
        started = time.perf_counter()
        report = CycleReport()
        if self._rules_changed:
            try:
                await self._after_rules_change(self._routes().rules)
            except Exception:
                self._stage_failed("timers")
        routes = self._routes()
        rules = routes.rules
        try:
            report.signals = await signal_stage.process_pending(
                self._pool, rules, self._clock.now()
            )
        except Exception:
            self._stage_failed("signals")
        rules = self._routes().rules  # a reload may have swapped them during the signals
        try:
            timers = await timer_stage.fire_due(self._pool, rules, self.owner, self._clock.now())
            report.timers = timers.fired
            if timers.failed:
                self._metrics.engine_errors.labels("timers").inc(timers.failed)
        except Exception:
            self._stage_failed("timers")
        try:
            report.deliveries = await delivery_stage.deliver_due(
                self._pool, self._deliverer, routes, self.owner, self._clock.now()
            )
        except Exception:
            self._stage_failed("deliveries")
        await self._prune_if_due()
        self._count(report)
        await self._refresh_open_gauge()
        self._metrics.engine_cycle.observe(time.perf_counter() - started)
        return report

    async def run(self) -> None:
        """Cycle until stopped; idle waits end early on :meth:`wake`."""
        log.info("engine.started", owner=self.owner)
        while not self._stopping.is_set():
            started = time.monotonic()
            report = await self.run_once()
            if report.busy:
                pause = pause_after(report, time.monotonic() - started, self._batch_window)
                if pause:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=pause)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
        log.info("engine.stopped", owner=self.owner)

    async def _after_rules_change(self, rules: RuleSet) -> None:
        """See ``rules_changed``; asked for again if it fails. The request is taken before any
        wait, so a reload during this one asks for another."""
        self._rules_changed = False
        now = self._clock.now()
        conditioned = [name for name, rule in rules.rules.items() if rule.has_condition]
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                released = await timers_table.release_held(connection, now)
                rechecked = await condition_store.recheck_orphans(connection, conditioned, now)
        except BaseException:
            self._rules_changed = True
            raise
        log.info("engine.rules_changed", held_released=released, conditions_rechecked=rechecked)

    async def _prune_if_due(self) -> None:
        """Once an hour, drop engine bookkeeping older than the retention period."""
        now = self._clock.now()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        try:
            async with self._pool.acquire() as connection:
                pruned = await retention.prune(connection, now - self._retention)
        except Exception:
            self._stage_failed("retention")
            return
        log.info("retention.pruned", **pruned.counts)

    def _stage_failed(self, stage: str) -> None:
        self._metrics.engine_errors.labels(stage).inc()
        log.exception("engine.stage_failed", stage=stage)

    def _count(self, report: CycleReport) -> None:
        m = self._metrics
        stored = report.signals.expansion.stored
        m.signals_received.labels(Source.ALERTMANAGER, "accepted").inc(stored.inserted)
        m.signals_received.labels(Source.ALERTMANAGER, "duplicate").inc(stored.duplicates)
        if report.signals.expansion.unreadable:
            m.engine_errors.labels("intake_log").inc(report.signals.expansion.unreadable)
        for outcome, count in report.signals.outcomes.items():
            m.signals_processed.labels(outcome).inc(count)
        decisions: list[Decision] = [
            *report.signals.decisions,
            *(t.decision for t in report.timers),
        ]
        for decision in decisions:
            incident = decision.incident
            if incident is None:
                continue
            if decision.opened:
                m.incidents_opened.labels(incident.rule, incident.severity).inc()
                log.info("incident.opened", rule=incident.rule, title=incident.title)
            if decision.resolved:
                m.incidents_resolved.labels(incident.rule, incident.severity).inc()
                log.info("incident.resolved", rule=incident.rule, title=incident.title)
        for fired in report.timers:
            m.timer_lag.observe(max(fired.lag.total_seconds(), 0.0))
            m.timers_fired.labels(fired.timer.kind, fired.decision.reason).inc()
        for delivery in report.deliveries:
            m.deliveries.labels(delivery.message.channel, delivery.outcome, delivery.reason).inc()

    async def _refresh_open_gauge(self) -> None:
        """Count open incidents and the backlog for the gauges, at most once a second: cycles
        under load run back to back, and a count per cycle would be work no scrape ever sees."""
        if time.monotonic() - self._gauge_refreshed < GAUGE_EVERY_SECONDS:
            return
        self._gauge_refreshed = time.monotonic()
        try:
            rows = await self._pool.fetch(
                "SELECT state, count(*) AS n FROM incidents"
                " WHERE state <> 'resolved' GROUP BY state"
            )
        except (asyncpg.PostgresError, OSError):
            return
        counts = {row["state"]: row["n"] for row in rows}
        for state in ("triggered", "acknowledged"):
            self._metrics.incidents_open.labels(state).set(counts.get(state, 0))
        await self._refresh_backlog_gauges()

    async def _refresh_backlog_gauges(self) -> None:
        """How far behind the engines are, for the alerts that watch Stormwatch itself: what
        waits for them and how long, whichever replica's engine should have taken it."""
        now = self._clock.now()
        try:
            async with self._pool.acquire() as connection:
                backlog = await intake_log.backlog(connection)
                backlog += await signals_table.queued_backlog(connection)
                page_due = await outbox.oldest_due(connection, now)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return
        m = self._metrics
        m.signals_waiting.set(backlog.waiting)
        m.oldest_unprocessed_age.set(_seconds_since(backlog.oldest, now))
        m.oldest_unsent_page_age.set(_seconds_since(page_due, now))

    @property
    def running(self) -> bool:
        """Whether this engine has cycled lately (for readiness where it runs in-process):
        an idle engine cycles every interval, and the gauges refresh after every cycle."""
        quiet_for = time.monotonic() - self._gauge_refreshed
        return quiet_for < self._interval + GAUGE_EVERY_SECONDS + STALLED_AFTER_SECONDS


def _seconds_since(then: datetime | None, now: datetime) -> float:
    return 0.0 if then is None else max((now - then).total_seconds(), 0.0)
