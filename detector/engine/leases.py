"""Short leases on claimed rows, renewed while this replica works on them.

Timers and outbox messages are claimed with a lease rather than a lock, so the work (a send, a
decision) happens outside the claiming transaction. A replica that dies leaves its leases to
run out before another replica takes the rows over, so a lease lasts only ``TERM``, and a
heartbeat renews the leases of the rows still being worked on every ``RENEW_EVERY``: a dead
replica's claims come back within seconds, however long a live replica's work takes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType

import structlog

from detector.store.connection import UNAVAILABLE

log = structlog.get_logger(__name__)
TERM = timedelta(seconds=5)
"""How long a claim lasts unless renewed: how long a dead replica's claims wait."""
RENEW_EVERY = TERM / 3
"""Two renewals may fail (a slow database, a busy event loop) before a live claim runs out."""

_RENEW_ERRORS: tuple[type[Exception], ...] = (*UNAVAILABLE, TimeoutError)

Renew = Callable[[list[int], datetime], Awaitable[object]]
"""Extends this replica's leases on the given row ids to the given time."""


class LeaseKeeper:
    """Renews the leases on ``ids`` while the ``async with`` block runs.

    Each row is renewed until :meth:`let_go` (its work is done), and at most until ``longest``
    after ``since``: work that hangs past every timeout lets another replica try.
    """

    def __init__(
        self,
        renew: Renew,
        ids: Iterable[int],
        now: Callable[[], datetime],
        since: datetime,
        longest: timedelta,
    ) -> None:
        self._renew = renew
        self._leased = set(ids)
        self._now = now
        self._until = since + longest
        self._task: asyncio.Task[None] | None = None

    def let_go(self, row_id: int) -> None:
        """Stop renewing ``row_id``: its work is done (its lease ends when it is recorded, or
        runs out if recording fails)."""
        self._leased.discard(row_id)

    async def __aenter__(self) -> LeaseKeeper:
        if self._leased:
            self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _beat(self) -> None:
        while self._leased:
            await asyncio.sleep(RENEW_EVERY.total_seconds())
            now = self._now()
            if now >= self._until:
                return
            leased = sorted(self._leased)
            try:
                await self._renew(leased, min(now + TERM, self._until))
            except _RENEW_ERRORS as err:
                log.warning("lease.renew_failed", rows=len(leased), error=type(err).__name__)
