"""Group commit for intake: signals from concurrent webhook requests share one transaction.

Each request waits for the commit that contains its signals before it is answered, so a 2xx
still means durable; batching only amortises the commit cost across requests under load.
"""

from __future__ import annotations

import asyncio
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

    Up to ``writers`` commits run at once; each takes everything queued when it starts (at most
    ``max_batch`` signals), so batches grow with load and stay at one request when idle.
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
        self._queue: list[_Pending] = []
        self._writers = asyncio.Semaphore(writers)
        self._max_batch = max_batch
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, signals: Sequence[Signal]) -> None:
        """Store ``signals`` durably; returns once committed, raises if the commit failed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(signals, done))
        self._start_writer()
        return await done

    def _start_writer(self) -> None:
        task = asyncio.create_task(self._write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self) -> None:
        async with self._writers:
            batch = self._take()
            if not batch:
                return
            try:
                await self._commit(batch)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as err:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(err)
                return
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0].signals) <= self._max_batch):
            item = self._queue.pop(0)
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
