"""The engine's own process under ``stormwatch serve``: started, restarted if it dies, stopped.

Webhook intake and the engine then use separate cores: a burst of webhooks is answered while the
engine works off the backlog, and engine work never blocks the event loop that answers webhooks
(it still competes with it for the machine's CPU and WAL flushes).

The child reads its settings (secrets included) from stdin, never from its command line or
environment, together with the rule set its predecessor last ran: a replacement for a child that
died starts with those when the rules directory has turned invalid since, as a running process
keeps its rules through a rejected reload. Stdin then stays open, so the child also stops when
this process dies without stopping it. On stdout the child reports each rule set it runs, the
first report meaning that its engine runs.
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
from typing import BinaryIO

import structlog
from prometheus_client import multiprocess

from detector.ruleset.rules import RuleSet
from detector.service.settings import Settings

log = structlog.get_logger(__name__)
STOP_TIMEOUT_S = 30.0
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 60.0  # a child that ran this long restarts with the shortest delay again
_SIZE_BYTES = 4  # a report is its length, then the pickled RuleSet


class EngineProcessFailed(RuntimeError):
    """The engine process could not be started."""


def report(stream: BinaryIO, rules: RuleSet) -> None:
    """In the child: tell the parent which rule set runs now."""
    body = pickle.dumps(rules)
    stream.write(len(body).to_bytes(_SIZE_BYTES, "big") + body)
    stream.flush()


async def _next_report(reports: asyncio.StreamReader) -> RuleSet | None:
    """The next rule set the child reports running, or None once it has exited."""
    try:
        size = int.from_bytes(await reports.readexactly(_SIZE_BYTES), "big")
        rules: RuleSet = pickle.loads(await reports.readexactly(size))  # noqa: S301 - our child
    except asyncio.IncompleteReadError:
        return None
    return rules


def _backoff(failures: int) -> float:
    return RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S)) - 1]


class EngineProcess:
    """Runs ``python -m detector.service.engine_runner`` for as long as the block lasts."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self._ready = False  # the child has reported: it handles SIGHUP now
        self._reload_missed = False
        self._rules: RuleSet | None = None  # what the latest child last reported running
        self._supervisor: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EngineProcess:
        self._supervisor = asyncio.create_task(self._supervise(await self._spawn()))
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
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("engine.process_killed", pid=process.pid, after_s=STOP_TIMEOUT_S)
                process.kill()
                await process.wait()
        self._exited(process)

    @property
    def running(self) -> bool:
        """Whether a child runs the engine now: it has reported, and has not exited since."""
        process = self._process
        return self._ready and process is not None and process.returncode is None

    def reload(self) -> None:
        """Have the child reload its rules (SIGHUP) once it has reported that it runs: until it
        has its handler, SIGHUP would kill it."""
        process = self._process
        if self._ready and process is not None and process.returncode is None:
            process.send_signal(signal.SIGHUP)
        else:
            self._reload_missed = True

    async def _spawn(self) -> asyncio.subprocess.Process:
        """Start a child and wait until its engine runs; raise if it dies before that."""
        # A session of its own: a terminal's Ctrl-C reaches only the parent, which stops
        # the child in order instead of both racing to exit.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "detector.service.engine_runner",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._process = process
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(pickle.dumps((self._settings, self._rules)))
        rules = await _next_report(process.stdout)
        if rules is None:
            code = await process.wait()
            self._exited(process)
            raise EngineProcessFailed(f"the engine process exited with {code} while starting")
        self._rules = rules
        self._ready = True
        log.info("engine.process_started", pid=process.pid)
        if self._reload_missed:
            self._reload_missed = False
            self.reload()
        return process

    async def _supervise(self, process: asyncio.subprocess.Process) -> None:
        """Restart the child whenever it exits, backing off while it keeps failing.

        A restart that fails, whether the child dies while starting or the fork is refused
        under memory pressure, counts as one more failure and is tried again later.
        """
        failures = 0
        while True:
            started = time.monotonic()
            code = await self._until_exit(process)
            failures = 1 if time.monotonic() - started >= STABLE_AFTER_S else failures + 1
            log.error("engine.process_exited", code=code, restart_in_s=_backoff(failures))
            while True:
                await asyncio.sleep(_backoff(failures))
                try:
                    process = await self._spawn()
                    break
                except Exception:
                    failures += 1
                    log.exception("engine.process_restart_failed", restart_in_s=_backoff(failures))

    async def _until_exit(self, process: asyncio.subprocess.Process) -> int:
        """Keep the rule set the child reports running until it exits; its exit code."""
        assert process.stdout is not None
        while (rules := await _next_report(process.stdout)) is not None:
            self._rules = rules
        code = await process.wait()
        self._exited(process)
        return code

    def _exited(self, process: asyncio.subprocess.Process) -> None:
        """Let go of a child that has exited, including its gauges: /metrics would otherwise
        combine its last values with the live processes' for as long as this one runs."""
        self._ready = False
        assert process.stdin is not None
        process.stdin.close()
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if shared:
            multiprocess.mark_process_dead(process.pid, shared)  # type: ignore[no-untyped-call]
