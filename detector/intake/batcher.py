"""Group commit for intake: bodies from concurrent webhook requests share one commit.

Each request waits for the commit that contains its body before it is answered, so a 2xx still
means durable; batching only amortises the commit cost across requests under load. A commit
writes one intake log record per set of alert names, so the engine can take an unrelated alert
ahead of a storm's (``engine.overtaking``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.intake.alertmanager import log_record
from detector.store import intake_log
from detector.store.connection import UNAVAILABLE, Pool
from detector.store.pooled import pooled

DB_ERRORS: tuple[type[Exception], ...] = (*UNAVAILABLE, TimeoutError)
ANSWER_WITHIN = timedelta(seconds=10)
"""How long a request waits for its commit before it is answered 503, unless told otherwise
(``STORMWATCH_INTAKE_TIMEOUT``). A database that stops answering without closing the connection
(a partition, a frozen VM) would otherwise hold every request, and Alertmanager's resends would
pile up behind them."""


@dataclass(slots=True)
class _Pending:
    entry: bytes
    alerts: int
    alertnames: tuple[str, ...]
    done: asyncio.Future[None]


class IntakeBatcher:
    """Collects log entries while a commit is in flight and writes them as one record.

    At most ``writers`` writer tasks run; each holds one connection and loops, taking everything
    queued (up to ``max_alerts`` alerts) into one record, until the queue is empty. Records grow
    with load and stay at one request when idle, and no task is created per request.

    One writer is the default: a commit takes about a millisecond, and every commit costs
    PostgreSQL a fixed amount of CPU, so a second writer halved the records' size and doubled
    the commits without answering sooner (at 2,000 webhooks/s its commits took a quarter of a
    core, and the slowest answers waited for that CPU). ``on_commit`` hears each commit's time
    and webhook count (the metrics that tell a slow database from a busy process).
    """

    def __init__(
        self,
        pool: Pool,
        now: Callable[[], datetime],
        answer_within: timedelta = ANSWER_WITHIN,
        on_commit: Callable[[float, int], None] | None = None,
        writers: int = 1,
        max_alerts: int = 5000,
    ) -> None:
        self._pool = pool
        self._answer_within = answer_within.total_seconds()
        self._now = now
        self._queue: deque[_Pending] = deque()
        self._max_writers = writers
        self._max_alerts = max_alerts
        self._tasks: set[asyncio.Task[None]] = set()
        self._writing = 0
        self._on_commit = on_commit

    async def submit(self, entry: bytes, alerts: int, alertnames: tuple[str, ...]) -> None:
        """Store one framed request of ``alerts`` alerts with these distinct names durably;
        returns once committed, raises if that failed or took longer than ``answer_within``
        (TimeoutError; the request is then not written if its turn has not come yet)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Pending(entry, alerts, alertnames, done))
        if self._writing < self._max_writers:
            self._writing += 1
            task = asyncio.create_task(self._write_until_empty())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A bare timer rather than asyncio.timeout: a twentieth of the intake's CPU in a storm.
        expiry = loop.call_later(self._answer_within, _expire, done)
        try:
            return await done
        finally:
            expiry.cancel()

    async def _write_until_empty(self) -> None:
        try:
            while self._queue:
                await self._write_batches()
        finally:
            # Counted down in the same step as the last look at the queue, not in a done
            # callback that runs later: a request queued in between would find no writer.
            self._writing -= 1

    async def _write_batches(self) -> None:
        batch: list[_Pending] = []
        try:
            # Giving the connection back cannot fail the batches already committed on it.
            async with pooled(self._pool) as connection:
                while batch := self._take():
                    started = time.perf_counter()
                    await intake_log.append(connection, self._now(), _records(batch))
                    _settle(batch, None)
                    if self._on_commit is not None:
                        self._on_commit(time.perf_counter() - started, len(batch))
        except DB_ERRORS as err:
            # The failed batch, or the next one when no connection could be had: each
            # failure answers someone 503 (Alertmanager retries), so the queue always moves.
            _settle(batch or self._take(), err)
        except Exception as err:
            _settle(batch, err)  # answered at once, not after answer_within
            raise

    def _take(self) -> list[_Pending]:
        """The next batch; requests already answered 503 (timed out) are dropped unwritten,
        since their sender retries them."""
        batch: list[_Pending] = []
        size = 0
        while self._queue and (not batch or size + self._queue[0].alerts <= self._max_alerts):
            item = self._queue.popleft()
            if item.done.done():
                continue
            batch.append(item)
            size += item.alerts
        return batch

    async def drain(self) -> None:
        """Wait for in-flight commits (used at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _records(batch: list[_Pending]) -> list[intake_log.Record]:
    """The batch as records, one per set of alert names, in arrival order within each. The
    requests of one commit were in flight together, none answered before another was sent, so
    no order a sender could rely on is lost between the records."""
    runs: dict[tuple[str, ...], list[_Pending]] = {}
    for item in batch:
        runs.setdefault(item.alertnames, []).append(item)
    return [
        intake_log.Record(
            len(run), sum(item.alerts for item in run), names, log_record([i.entry for i in run])
        )
        for names, run in runs.items()
    ]


def _expire(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_exception(TimeoutError())


def _settle(batch: list[_Pending], error: Exception | None) -> None:
    for item in batch:
        if item.done.done():
            continue
        if error is None:
            item.done.set_result(None)
        else:
            item.done.set_exception(error)
