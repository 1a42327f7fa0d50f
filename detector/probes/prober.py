"""The journey loop where the engine runs: claim the due runs of this location (once across its
replicas), run them with a bound on how many are in flight, and record each result, with the
signal of a journey that starts or stops failing, in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from detector.intake.alertmanager import log_record
from detector.probes.alert import log_entry, probe_labels, retired_entry
from detector.probes.journey import JourneySpec
from detector.probes.outcome import RunResult
from detector.probes.report import record_metrics
from detector.probes.runner import JourneyRunner
from detector.probes.schedule import next_run, start_offset
from detector.probes.thresholds import Transition, advance
from detector.service.clock import Clock
from detector.service.metrics import Metrics
from detector.store import intake_log
from detector.store import probes as store
from detector.store.connection import UNAVAILABLE, Pool
from detector.store.pooled import pooled

log = structlog.get_logger(__name__)
LONGEST_WAIT = timedelta(seconds=1)
SHORTEST_WAIT = timedelta(milliseconds=50)
"""Due runs are claimed together within this much: fewer queries, at most this much late."""


class Prober:
    """Runs the enabled journeys of the current rules from one location."""

    def __init__(
        self,
        pool: Pool,
        journeys: Callable[[], Mapping[str, JourneySpec]],
        runner: JourneyRunner,
        clock: Clock,
        metrics: Metrics,
        *,
        location: str,
        owner: str,
        concurrency: int,
    ) -> None:
        self._pool = pool
        self._journeys = journeys
        self._runner = runner
        self._clock = clock
        self._metrics = metrics
        self.location = location
        self._owner = owner
        self._slots = asyncio.Semaphore(concurrency)
        self._added: set[str] = set()
        self._known: set[str] | None = None
        self._running: set[asyncio.Task[RunResult | None]] = set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop claiming; runs in flight are cancelled (their slots simply pass)."""
        self._stopping.set()

    async def run(self) -> None:
        """Claim and start due runs until stopped."""
        log.info("probes.started", location=self.location, owner=self._owner)
        while not self._stopping.is_set():
            try:
                await self.start_due()
            except UNAVAILABLE as err:
                log.warning("probes.claim_failed", error=str(err)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._pause())
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def run_due(self) -> list[RunResult]:
        """Claim the due runs and wait for them (one cycle, for tests and benchmarks)."""
        tasks = await self.start_due()
        return [result for result in await asyncio.gather(*tasks) if result is not None]

    async def start_due(self) -> list[asyncio.Task[RunResult | None]]:
        """Claim this location's due runs and start them."""
        journeys = {name: j for name, j in self._journeys().items() if j.enabled}
        now = self._clock.now()
        if set(journeys) != self._known:  # at start, and when the rules changed
            await self._retire(sorted(journeys), now)
            self._known = set(journeys)
        if not journeys:
            return []
        slots = [self._slot(journey, now) for journey in journeys.values()]
        async with pooled(self._pool) as connection:  # its return cannot lose the claim
            new = [slot for slot in slots if slot.journey not in self._added]
            if new:
                await store.add(connection, self.location, new)
                self._added.update(slot.journey for slot in new)
            claims = await store.claim_due(connection, self.location, slots, self._owner, now)
        tasks = []
        for claim in claims:
            task = asyncio.create_task(self._run(journeys[claim.journey], claim.due_at))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            tasks.append(task)
        return tasks

    async def _retire(self, running: list[str], now: datetime) -> None:
        """Forget the journeys no longer run here, resolving the signals of firing ones."""
        async with self._pool.acquire() as connection, connection.transaction():
            retired = await store.retire(connection, self.location, running)
            for gone in retired:
                entry = retired_entry(gone.labels, gone.firing_since, now)
                await intake_log.append(connection, now, [_record(entry, gone.labels)])
        self._added &= set(running)
        for gone in retired:
            log.info("probe.retired", journey=gone.labels.get("journey"), location=self.location)

    def _slot(self, journey: JourneySpec, now: datetime) -> store.Slot:
        offset = start_offset(journey.name, self.location, journey.interval)
        return store.Slot(journey.name, next_run(journey.interval, offset, now))

    def _pause(self) -> float:
        """Until the next slot of any journey, within SHORTEST_WAIT and LONGEST_WAIT."""
        now = self._clock.now()
        upcoming = [self._slot(j, now).next_due for j in self._journeys().values() if j.enabled]
        wait = min(upcoming, default=now + LONGEST_WAIT) - now
        return min(max(wait, SHORTEST_WAIT), LONGEST_WAIT).total_seconds()

    async def _run(self, journey: JourneySpec, due_at: datetime) -> RunResult | None:
        """One claimed run, recorded; a failure to record is logged (the slot passes)."""
        try:
            async with self._slots:
                started = self._clock.now()
                delay = max((started - due_at).total_seconds(), 0.0)
                self._metrics.probe_start_delay.observe(delay)
                result = await self._runner.run(journey, uuid.uuid4().hex, started)
            record_metrics(self._metrics, result)
            await self.record(journey, result)
        except UNAVAILABLE as err:
            log.warning("probes.record_failed", journey=journey.name, error=str(err)[:200])
            return None
        except Exception:
            log.exception("probes.run_failed", journey=journey.name)
            return None
        return result

    async def record(self, journey: JourneySpec, result: RunResult) -> Transition:
        """Count the run and keep it; log the journey's signal if it starts or stops failing."""
        now = self._clock.now()
        async with self._pool.acquire() as connection, connection.transaction():
            health = await store.lock_health(connection, journey.name, self.location)
            new, transition = advance(
                health,
                result.success,
                now,
                journey.failure_threshold,
                journey.success_threshold,
            )
            labels = probe_labels(journey, self.location)
            await store.save_run(
                connection, journey.name, self.location, new, result.as_json(), now, labels
            )
            if transition is not Transition.NONE:
                since = new.firing_since or health.firing_since or now
                entry = log_entry(journey, transition, since, result, now)
                await intake_log.append(connection, now, [_record(entry, labels)])
        if transition is not Transition.NONE:
            log.info(
                f"probe.{transition}",
                journey=journey.name,
                location=self.location,
                step=result.failed_step.name if result.failed_step else None,
            )
        return transition


def _record(entry: bytes, labels: Mapping[str, str]) -> intake_log.Record:
    """A probe's alert entry as an intake log record of its own."""
    return intake_log.Record(1, 1, (labels.get("alertname", ""),), log_record([entry]))
