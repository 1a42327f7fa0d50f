"""The engine's own process under ``stormwatch serve``: started, restarted if it dies, stopped.

Webhook intake and the engine then use separate cores: a burst of webhooks is answered while the
engine works off the backlog, and engine work never blocks the event loop that answers webhooks
(it still competes with it for the machine's CPU and WAL flushes). The child gets
its settings (secrets included) through a pipe, never through its command line or environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys
import time
from types import TracebackType

import structlog

from detector.settings import Settings

log = structlog.get_logger(__name__)
STOP_TIMEOUT_S = 30.0
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 60.0  # a child that ran this long restarts with the shortest delay again
READY = b"ready"


class EngineProcessFailed(RuntimeError):
    """The engine process could not be started."""


class EngineProcess:
    """Runs ``python -m detector.engine_runner`` for as long as the block lasts."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EngineProcess:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop the child after it finishes its engine cycle (SIGTERM), or kill it if it hangs."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("engine.process_killed", pid=process.pid, after_s=STOP_TIMEOUT_S)
            process.kill()
            await process.wait()

    def reload(self) -> None:
        """Have the child reload its rules (SIGHUP)."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGHUP)

    async def _spawn(self) -> None:
        """Start the child and wait until its engine runs; raise if it dies before that."""
        ready_read, ready_write = os.pipe()
        try:
            # A session of its own: a terminal's Ctrl-C reaches only the parent, which stops
            # the child in order instead of both racing to exit.
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "detector.engine_runner",
                str(ready_write),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(ready_write,),
                start_new_session=True,
            )
            os.close(ready_write)
            self._process = process
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(self._settings))
            await process.stdin.drain()
            process.stdin.close()
            # The child writes once its engine runs; EOF means it died first.
            ready = await asyncio.to_thread(os.read, ready_read, 16)
        finally:
            os.close(ready_read)
        if ready != READY:
            code = await process.wait()
            raise EngineProcessFailed(f"the engine process exited with {code} while starting")
        log.info("engine.process_started", pid=process.pid)

    async def _supervise(self) -> None:
        """Restart a child that exits on its own, backing off while it keeps failing."""
        failures = 0
        while self._process is not None:
            started = time.monotonic()
            code = await self._process.wait()
            failures = 1 if time.monotonic() - started >= STABLE_AFTER_S else failures + 1
            delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S)) - 1]
            log.error("engine.process_exited", code=code, restart_in_s=delay)
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except EngineProcessFailed:
                log.exception("engine.process_restart_failed")
