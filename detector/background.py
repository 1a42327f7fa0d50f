"""The service's long-running loops, stopped in reverse start order at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundLoops:
    """Starts loops as tasks; ``stop_all`` asks each to finish (or cancels it) and waits."""

    def __init__(self) -> None:
        self._loops: list[tuple[asyncio.Task[None], Callable[[], None] | None]] = []

    def start(
        self, loop: Coroutine[Any, Any, None], stop: Callable[[], None] | None = None
    ) -> None:
        """Run ``loop``; ``stop`` lets it finish its current work, else it is cancelled."""
        self._loops.append((asyncio.create_task(loop), stop))

    async def stop_all(self) -> None:
        """Stop the newest loop first, so nothing runs against resources already stopped."""
        for task, stop in reversed(self._loops):
            if stop is None:
                task.cancel()
            else:
                stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
