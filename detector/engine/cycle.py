"""The engine every replica runs: its stages, each isolated from the others, in three lanes.

The stages (``standard_stages``) each belong to a lane (``stage.Lane``). The detecting lane (a
change of rules settled → pending signals → due timers → notices) turns alerts into incidents
and decisions; the delivering lane sends the pages and messages they queued; the upkeep lane
audits, prunes and counts. ``run`` gives each lane a loop of its own, so a receiver that answers
slowly or a count over 100,000 open incidents never holds up the next alert's incident or its
page: the delivering loop is woken the moment a detecting stage finds work, and the detecting
loop wakes early when intake commits new signals. While a storm pours in, the detecting loop
rests between cycles (``STORM_PACE``) and runs quick passes (``run_ahead``) for alerts that may
overtake the storm's. ``run_once`` is one cycle of every lane in turn (tests call it after
moving a fake clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from math import inf

import structlog

from detector.domain.related import DEFAULT_WINDOW
from detector.engine.audit import AuditStage
from detector.engine.delivery import Deliverer, DeliveryBatch, DeliveryOutcome, DeliveryStage
from detector.engine.gauges import GaugeStage
from detector.engine.notice_stage import DEFAULT_PAGE, NoticeStage
from detector.engine.overtaking import may_overtake, reach_of
from detector.engine.pruning import PruneStage
from detector.engine.rules_change import RulesChangeStage
from detector.engine.signals import (
    SignalBatchResult,
    SignalProcessor,
    SignalStage,
    process_pending,
)
from detector.engine.stage import CycleContext, Lane, Stage, StageReport
from detector.engine.statistics import StatisticsStage
from detector.engine.timers import FiredTimer, TimerBatch, TimerStage
from detector.ruleset.live import Routes
from detector.service.clock import Clock
from detector.service.metrics import Metrics
from detector.store.connection import Pool
from detector.store.intake_log import payload_names
from responders.statuspage.model import PageInfo

log = structlog.get_logger(__name__)
STALLED_AFTER_SECONDS = 60.0
UPKEEP_EVERY = timedelta(seconds=1)
"""How often the upkeep lane runs (each of its stages keeps its own, slower pace within it)."""
SLOW_PASS = timedelta(seconds=1)
MAX_PASSES = 4
"""Passes of one lane running at once at most, the slow ones included (``Engine._follow``)."""
INTAKE_QUIET = 0.1
"""Seconds without an intake commit after which a resting detecting lane stops resting: the
storm has stopped, and nobody needs the CPU it leaves."""


def standard_stages(
    deliverer: Deliverer,
    retention: timedelta,
    related_window: timedelta = DEFAULT_WINDOW,
    process_signals: SignalProcessor | None = None,
    page: PageInfo = DEFAULT_PAGE,
    hurry: Callable[[], bool] | None = None,
) -> list[Stage]:
    """The stages of every cycle, in the order they run within their lanes; incidents that open
    in them are linked to those of their component opened within ``related_window``; notices
    speak for ``page``; ``hurry`` tells the signal stage that alerts which may overtake a storm
    are waiting for a quick pass (``process_pending``).

    A first step of people fires as a timer due at once, in the timer stage right after the
    signals that opened its incident; the audit, which works in minutes, puts a lost timer back
    for the detecting lane's next cycle."""
    return [
        RulesChangeStage(),
        SignalStage(
            process_signals or partial(process_pending, related_window=related_window, hurry=hurry),
            partial(process_pending, related_window=related_window, ahead=True),
        ),
        TimerStage(related_window),
        NoticeStage(page),
        DeliveryStage(deliverer),
        AuditStage(),
        PruneStage(retention),
        GaugeStage(),
        StatisticsStage(),
    ]


class CycleReport:
    """What one cycle did, for tests and logs: the report of each stage that completed, under
    the stage's name; the standard stages' reports are also at hand by type."""

    def __init__(self, **stages: StageReport) -> None:
        self.stages = stages

    @property
    def busy(self) -> bool:
        """True when the cycle found work, so the next one should follow at once."""
        return any(report.busy for report in self.stages.values())

    @property
    def signals(self) -> SignalBatchResult:
        """What the signal stage did (nothing, if it failed)."""
        report = self.stages.get(SignalStage.name)
        return report if isinstance(report, SignalBatchResult) else SignalBatchResult()

    @property
    def timers(self) -> list[FiredTimer]:
        """The timers that fired."""
        report = self.stages.get(TimerStage.name)
        return report.fired if isinstance(report, TimerBatch) else []

    @property
    def next_due(self) -> datetime | None:
        """When the earliest timer still waiting falls due, if the timer stage said."""
        report = self.stages.get(TimerStage.name)
        return report.next_due if isinstance(report, TimerBatch) else None

    @property
    def deliveries(self) -> list[DeliveryOutcome]:
        """How each delivery attempt ended."""
        report = self.stages.get(DeliveryStage.name)
        return report.outcomes if isinstance(report, DeliveryBatch) else []


WORTH_BATCHING = 50
"""Signals a cycle must find for the batch window to apply in full (fewer: a share of it)."""


STORM_PACE = 3.0
"""While a storm pours in and a group's backlog waits, the detecting lane rests this many seconds
per second of its last cycle (by default it works a quarter of the time), where the intake shares
the machine and needs the CPU to store the storm; the backlog is worked off once it stops.
Meanwhile quick passes open the incidents of other rules (``Engine._pace``)."""


def pause_after(
    report: CycleReport, elapsed: float, window: float, pace: float = STORM_PACE, cap: float = inf
) -> float:
    """Seconds to wait before the next cycle after one that found work, at most ``cap``.

    While new alerts arrive and a group's backlog waits (a storm), ``pace`` times the cycle's
    own time, at least ``window``. Zero while the queue or the intake log holds more than a
    batch, and while group backlogs wait with no new alerts arriving (a storm is over: work it
    off back to back). Otherwise what is left of a share of ``window`` since the cycle started:
    under a stream of webhooks the engine would otherwise run one small cycle per intake commit,
    and each cycle's fixed cost (transaction, queue, backlog and timer queries, a pass per
    group) would dominate; waiting lets a batch build up, at most ``window`` of extra latency.
    The share grows with the batch the cycle found (full from ``WORTH_BATCHING`` signals), so a
    trickle of new incidents is paged at once while a flood is batched. The caller's idle wait
    is the ``cap``: resting never makes a timer late, nor outlasts the idle interval.
    """
    signals = report.signals
    if pace and signals.storming and signals.arrived:
        return min(max(elapsed * pace, window), cap)
    if signals.behind or (signals.sliced and not signals.arrived):
        return 0.0
    share = min(signals.processed / WORTH_BATCHING, 1.0)
    return min(max(window * share - elapsed, 0.0), cap)


class Engine:
    """Runs the stages against one database; any number of replicas may run side by side.

    ``extra_stages`` run in their lanes after the standard ones, each cycle, under the same
    isolation, timing and metrics; ``process_signals`` replaces what the signal stage runs (a
    replica under test whose rule group fails, say); ``related_window`` is how close together
    incidents of one component must open to be linked as related; ``page`` is the public status
    page notices speak for (its name, address and time zone); ``storm_pace`` how long the
    detecting lane rests per second of cycle while a storm pours in (``pause_after``)."""

    def __init__(
        self,
        pool: Pool,
        routes: Callable[[], Routes],
        deliverer: Deliverer,
        clock: Clock,
        metrics: Metrics,
        interval: timedelta = timedelta(seconds=1),
        owner: str | None = None,
        retention: timedelta = timedelta(days=30),
        batch_window: timedelta = timedelta(0),
        extra_stages: Sequence[Stage] = (),
        *,
        process_signals: SignalProcessor | None = None,
        related_window: timedelta = DEFAULT_WINDOW,
        page: PageInfo = DEFAULT_PAGE,
        storm_pace: float = STORM_PACE,
    ) -> None:
        self._pool = pool
        self._routes = routes
        self._clock = clock
        self._metrics = metrics
        self._ahead = asyncio.Event()
        standard = standard_stages(
            deliverer, retention, related_window, process_signals, page, self._ahead.is_set
        )
        stages = [*standard, *extra_stages]
        names = [stage.name for stage in stages]
        if len(set(names)) < len(names):
            raise ValueError(f"every stage needs a name of its own: {names}")
        self._lanes = {lane: [stage for stage in stages if stage.lane is lane] for lane in Lane}
        self._interval = interval.total_seconds()
        self._batch_window = batch_window.total_seconds()
        self._storm_pace = storm_pace
        self.owner = owner or f"engine-{uuid.uuid4().hex[:12]}"
        self._wakes = {lane: asyncio.Event() for lane in Lane}
        self._storming: frozenset[str] = frozenset()
        """The rules whose backlog the last detecting cycle left waiting."""
        self._heard = float("-inf")
        """When intake last committed (``time.monotonic``)."""
        self._stopping = asyncio.Event()
        self._rules_generation = 1  # the rules may have been edited while no engine ran
        self._last_cycle = time.monotonic()

    def wake(self) -> None:
        """Ask for a cycle now, delivery included: something was acted on and messages queued
        (an ack, a subscription), or the reconciler stored signals."""
        self._wakes[Lane.DETECT].set()
        self._wakes[Lane.DELIVER].set()

    def signals_stored(self, payload: str = "") -> None:
        """Ask for a detecting cycle now: intake committed webhooks, whose alert names the
        notification's ``payload`` carries. While a storm is paced, ask for a quick pass if
        they may reach a rule other than the storm's (or are not known). Delivery follows from
        the detecting stage that finds work in them; woken by every commit as well, it ran six
        passes per detecting cycle through a storm, each claiming nothing."""
        self._heard = time.monotonic()
        self._wakes[Lane.DETECT].set()
        reach = reach_of(self._routes().rules)
        if self._storming and may_overtake(payload_names(payload), self._storming, reach):
            self._ahead.set()

    def rules_changed(self) -> None:
        """After a rules reload, have the next cycle's stages react to the new rules (see
        ``rules_change``: the escalations windows deferred are retried, the groups whose rule
        lost its condition checked)."""
        self._rules_generation += 1
        self._wakes[Lane.DETECT].set()

    def stop(self) -> None:
        """Stop after the cycle in progress, in every lane."""
        self._stopping.set()
        self._ahead.set()
        for wake in self._wakes.values():
            wake.set()

    async def run_once(self) -> CycleReport:
        """One cycle of every stage, lane after lane, each stage isolated from the others'
        failures."""
        started = time.perf_counter()
        reports: dict[str, StageReport] = {}
        for lane in Lane:
            reports |= await self._run_lane(lane)
        self._metrics.engine_cycle.observe(time.perf_counter() - started)
        self._last_cycle = time.monotonic()
        return CycleReport(**reports)

    @property
    def running(self) -> bool:
        """Whether this engine's detecting stages have run lately (readiness, where it runs in
        the web process): they run every interval when idle, so a longer silence means a hang."""
        return time.monotonic() - self._last_cycle < self._interval + STALLED_AFTER_SECONDS

    async def run(self) -> None:
        """Run every lane in a loop of its own until stopped."""
        log.info("engine.started", owner=self.owner)
        async with asyncio.TaskGroup() as lanes:
            lanes.create_task(self._detect())
            lanes.create_task(self._follow(Lane.DELIVER, self._interval))
            lanes.create_task(self._follow(Lane.UPKEEP, UPKEEP_EVERY.total_seconds()))
        log.info("engine.stopped", owner=self.owner)

    async def _detect(self) -> None:
        """Detecting cycles: back to back while they find work (after a pause that lets a batch
        build up, ``pause_after``), else when woken or when the next timer falls due."""
        wake = self._wakes[Lane.DETECT]
        while not self._stopping.is_set():
            started = time.monotonic()
            # Cleared before the cycle, not after it: a wake (new signals, or stop) that comes
            # while the cycle runs must end the idle wait that follows it.
            wake.clear()
            report = CycleReport(**await self._run_lane(Lane.DETECT))
            self._last_cycle = time.monotonic()
            elapsed = self._last_cycle - started
            self._metrics.engine_cycle.observe(elapsed)
            self._storming = report.signals.storming
            if report.busy:
                wait = self._idle_wait(report)
                pause = pause_after(report, elapsed, self._batch_window, self._storm_pace, wait)
                await self._pace(pause)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self._idle_wait(report))

    async def _pace(self, pause: float) -> None:
        """Rest ``pause`` seconds before the next detecting cycle. While a storm's backlog waits,
        run a quick pass (only the intake log records that may overtake the storm's,
        ``overtaking``) each time intake stores alerts that may reach another rule, so their
        incident opens and pages while the storm is paced. Resting ends early once intake has
        been quiet for ``INTAKE_QUIET``: the storm is over. A quick pass asked for while the
        cycle ran comes first even when the lane does not rest, or the next cycle would read
        one more share of the storm before that alert."""
        deadline = time.monotonic() + pause
        while not self._stopping.is_set():
            if self._ahead.is_set():
                await self.run_ahead()
                continue
            now = time.monotonic()
            left = min(deadline - now, self._heard + INTAKE_QUIET - now)
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ahead.wait(), timeout=left)

    async def run_ahead(self) -> CycleReport:
        """A quick pass of the detecting lane: the signal stage takes only the intake log
        records that may overtake a storm's (``CycleContext.ahead``)."""
        self._ahead.clear()
        return CycleReport(**await self._run_lane(Lane.DETECT, ahead=True))

    async def _follow(self, lane: Lane, every: float) -> None:
        """A lane that runs when woken, at once again while it finds work, else every
        ``every`` seconds. A pass still running after ``SLOW_PASS`` (a send waiting on a
        receiver that does not answer) is left to finish beside the next ones, at most
        ``MAX_PASSES`` at once: their claims never overlap, so it holds up only its own work."""
        wake = self._wakes[lane]
        passes: set[asyncio.Task[dict[str, StageReport]]] = set()
        while not self._stopping.is_set():
            wake.clear()
            current = asyncio.create_task(self._run_lane(lane))
            passes.add(current)
            current.add_done_callback(passes.discard)
            await asyncio.wait([current], timeout=SLOW_PASS.total_seconds())
            if current.done() and any(report.busy for report in current.result().values()):
                continue
            while len(passes) >= MAX_PASSES:
                await asyncio.wait(passes, return_when=asyncio.FIRST_COMPLETED)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=every)
        await asyncio.gather(*passes)

    async def _run_lane(self, lane: Lane, *, ahead: bool = False) -> dict[str, StageReport]:
        """Run ``lane``'s stages in order (``ahead``: a quick pass, ``CycleContext.ahead``). A
        detecting stage that found work wakes delivery at once (what it decided may be waiting
        to be sent); an upkeep stage that did wakes the other lanes (a repaired timer is due
        now)."""
        reports: dict[str, StageReport] = {}
        for stage in self._lanes[lane]:
            report = await self._run_stage(stage, ahead=ahead)
            if report is None:
                continue
            reports[stage.name] = report
            if report.busy and lane is not Lane.DELIVER:
                self._wakes[Lane.DELIVER].set()
                if lane is Lane.UPKEEP:
                    self._wakes[Lane.DETECT].set()
        return reports

    def _idle_wait(self, report: CycleReport) -> float:
        """The idle interval, cut short when a timer falls due sooner (at least 10 ms: a timer
        due already is claimed by a later stage of the same cycle)."""
        due = report.next_due
        if due is None:
            return self._interval
        until = (due - self._clock.now()).total_seconds()
        return min(self._interval, max(until, 0.01))

    async def _run_stage(self, stage: Stage, *, ahead: bool = False) -> StageReport | None:
        """Run one stage with the rules and time as they are now, time it, and count what it
        reports; a stage that raises is counted and logged, and the cycle goes on."""
        context = CycleContext(
            self._pool,
            self._routes(),
            self.owner,
            self._clock.now(),
            self._rules_generation,
            self._clock,
            self.running,
            ahead,
        )
        started = time.perf_counter()
        try:
            report = await stage.run(context)
            report.record(self._metrics)
        except Exception:
            self._metrics.engine_errors.labels(stage.name).inc()
            log.exception("engine.stage_failed", stage=stage.name)
            return None
        finally:
            self._metrics.engine_stage.labels(stage.name).observe(time.perf_counter() - started)
        return report
