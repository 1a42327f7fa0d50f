"""The service's long-running loops, stopped in reverse start order at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class BackgroundLoops:
    """Starts loops as tasks; ``stop_all`` asks each to finish (or cancels it) and waits."""

    def __init__(self) -> None:
        self._loops: list[tuple[asyncio.Task[None], Callable[[], None] | None]] = []

    def start(
        self, loop: Coroutine[Any, Any, None], stop: Callable[[], None] | None = None
    ) -> None:
        """Run ``loop``; ``stop`` lets it finish its current work, else it is cancelled."""
        task = asyncio.create_task(loop, name=getattr(loop, "__qualname__", None))
        task.add_done_callback(_log_crash)
        self._loops.append((task, stop))

    async def stop_all(self) -> None:
        """Stop the newest loop first, so nothing runs against resources already stopped.

        A loop that crashed was logged when it died; shutdown goes on with the others.
        """
        for task, stop in reversed(self._loops):
            if stop is None:
                task.cancel()
            else:
                stop()
            await asyncio.wait((task,))
        self._loops.clear()


def _log_crash(task: asyncio.Task[None]) -> None:
    """Say so at once when a loop dies: it stopped doing its work, and nothing else will tell."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background.loop_crashed", loop=task.get_name(), exc_info=error)
