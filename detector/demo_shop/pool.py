"""The shop's database connection pool, simulated: a fixed number of connections, clients that
queue for one in arrival order and give up after a timeout.

The pool-exhaustion fault is a runaway job that takes every connection as it comes free and
keeps it; requests then queue, and fail when their wait times out. The gauges an exporter reads
(active, idle, waiting, the longest wait) come from here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass


class PoolTimeout(Exception):
    """No connection came free within the pool's timeout."""


@dataclass(frozen=True, slots=True)
class PoolGauges:
    """The pool as an exporter reports it at one instant."""

    size: int
    active: int
    idle: int
    waiting: int
    longest_wait_seconds: float


class ConnectionPool:
    """``size`` connections; a client waits at most ``timeout`` seconds for one."""

    def __init__(
        self, size: int, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.timeout = timeout
        self._clock = clock
        self._idle = size
        self._held_by_runaway = 0
        self._runaway = False
        self._waiters: deque[tuple[asyncio.Future[None], float]] = deque()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[None]:
        """Hold a connection for the block; raises PoolTimeout when none comes free in time."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    def exhaust(self) -> None:
        """A runaway job takes every idle connection now, and each busy one when it is freed."""
        self._runaway = True
        self._held_by_runaway += self._idle
        self._idle = 0

    def recover(self) -> None:
        """The runaway job ends: its connections go to the queue first, then back to idle."""
        self._runaway = False
        held, self._held_by_runaway = self._held_by_runaway, 0
        for _ in range(held):
            self._release()

    def gauges(self) -> PoolGauges:
        """Active, idle and waiting connections now, and how long the first in line has waited."""
        waiting = [since for future, since in self._waiters if not future.done()]
        longest = self._clock() - waiting[0] if waiting else 0.0
        return PoolGauges(self.size, self.size - self._idle, self._idle, len(waiting), longest)

    async def _acquire(self) -> None:
        if self._idle and not self._waiters:
            self._idle -= 1
            return
        entry = (asyncio.get_running_loop().create_future(), self._clock())
        self._waiters.append(entry)
        future = entry[0]
        try:
            async with asyncio.timeout(self.timeout):
                await future
        except TimeoutError:
            self._give_back(future)
            raise PoolTimeout(f"no database connection within {self.timeout:g}s") from None
        except asyncio.CancelledError:  # the client went away while it waited
            self._give_back(future)
            raise
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _give_back(self, future: asyncio.Future[None]) -> None:
        """A wait that ended early may still have been handed a connection at that moment."""
        if future.done() and not future.cancelled():
            self._release()

    def _release(self) -> None:
        """Hand the connection to the runaway job, else to the first client still waiting,
        else back to idle."""
        if self._runaway and self._held_by_runaway < self.size:
            self._held_by_runaway += 1
            return
        while self._waiters:
            future, _ = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._idle += 1
