"""Group commit for intake: signals from concurrent webhook requests share one transaction.

Each request waits for the commit that contains its signals before it is answered, so a 2xx
still means durable; batching only amortises the commit cost across requests under load.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from detector import inbox
from detector.inbox import InsertResult
from detector.model import Signal

Committed = Callable[[InsertResult], None]


@dataclass(slots=True)
class _Pending:
    signals: Sequence[Signal]
    done: asyncio.Future[None]


class IntakeBatcher:
    """Collects signals while a commit is in flight and writes them together.

    At most ``writers`` writer tasks run; each loops, taking everything queued (up to
    ``max_batch`` signals) into one commit, until the queue is empty. Batches grow with load and
    stay at one request when idle, and no task is created per request.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        on_commit: Committed,
        writers: int = 3,
        max_batch: int = 5000,
    ) -> None:
        self._pool = pool
        self._on_commit = on_commit
        self._queue: deque[_Pending] = deque()
        self._max_writers = writers
        self._max_batch = max_batch
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, signals: Sequence[Signal]) -> None:
        """Store ``signals`` durably; returns once committed, raises if the commit failed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(signals, done))
        if len(self._tasks) < self._max_writers:
            task = asyncio.create_task(self._write_until_empty())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await done

    async def _write_until_empty(self) -> None:
        while batch := self._take():
            try:
                await self._commit(batch)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as err:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(err)
                continue
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0].signals) <= self._max_batch):
            item = self._queue.popleft()
            batch.append(item)
            size += len(item.signals)
        return batch

    async def _commit(self, batch: list[_Pending]) -> None:
        signals = [signal for item in batch for signal in item.signals]
        async with self._pool.acquire() as connection, connection.transaction():
            result = await inbox.insert_signals(connection, signals)
        self._on_commit(result)

    async def drain(self) -> None:
        """Wait for in-flight commits (used at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
