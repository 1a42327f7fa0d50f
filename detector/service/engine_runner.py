"""Entry point of the engine process that ``stormwatch serve`` starts (see engine_process.py).

Reads pickled Settings and its predecessor's rule set from stdin, runs the engine, the
Alertmanager reconciler and the rules watcher until SIGTERM or until the parent is gone, reloads
rules on SIGHUP, and reports the rule set it runs on stdout.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import pickle
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import structlog

from detector.ruleset.rules import RuleSet
from detector.service.app import engine_services
from detector.service.clock import SystemClock
from detector.service.engine_process import report
from detector.service.logs import configure_logging
from detector.service.serve import event_loop, tune_garbage_collection
from detector.service.settings import Settings

log = structlog.get_logger(__name__)
_PR_SET_PDEATHSIG = 1
_MAX_NICE = 19
_AUTOGROUP_NICE = re.compile(rb"nice (-?\d+)")
_AUTOGROUP_TRIES = 5  # the kernel takes one autogroup change a tenth of a second, machine-wide


class _ParentWatch(asyncio.Protocol):
    """The parent keeps our stdin open while it lives: end of file means it is gone."""

    def __init__(self, gone: Callable[[], None]) -> None:
        self._gone = gone

    def connection_lost(self, exc: Exception | None) -> None:
        log.warning("engine.parent_gone")
        self._gone()


async def run(settings: Settings, predecessor: RuleSet | None, reports: BinaryIO) -> None:
    """Run until SIGTERM or SIGINT or the parent's end, then let the engine finish its cycle.

    A replacement starts with its ``predecessor``'s rules and reloads the directory at once, so
    an invalid directory is reported as a rejected reload instead of keeping the engine down.
    ``reports`` hears of every rule set that runs, the first time once the engine runs.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await loop.connect_read_pipe(lambda: _ParentWatch(stop.set), sys.stdin)
    async with engine_services(settings, SystemClock(), predecessor) as services:
        loop.add_signal_handler(signal.SIGHUP, services.reloader.reload, "sighup")
        if predecessor is not None:
            services.reloader.reload("engine_restart")
        services.reloader.on_swap(lambda: report(reports, services.rules.current))
        await tune_garbage_collection()
        report(reports, services.rules.current)
        await stop.wait()


def _stop_with_parent() -> None:
    """On Linux the kernel sends SIGTERM when the parent dies, however it dies (the stdin watch
    in ``run`` covers other systems, from when the event loop runs)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stand_back(steps: int) -> None:
    """Let webhook intake have the CPU first when both want it: ``steps`` nice steps below the
    parent, and the same for this process's session where the kernel schedules sessions as
    groups (Linux autogroup), since this process leads a session of its own and a nice value
    alone would only weigh against itself there. Neither needs a privilege."""
    if steps <= 0:
        return
    try:
        os.nice(steps)
        own = Path("/proc/self/autogroup")
        if session_group_nice(own) is not None:
            parents = session_group_nice(Path(f"/proc/{os.getppid()}/autogroup")) or 0
            _write_retrying(own, str(min(parents + steps, _MAX_NICE)))
    except OSError as err:
        log.warning("engine.priority_unchanged", steps=steps, error=str(err))


def session_group_nice(path: Path) -> int | None:
    """The nice value of a session's scheduling group from its ``/proc/<pid>/autogroup``; None
    where the kernel has no such groups, or groups the process by a cpu cgroup instead (the file
    is empty then, and a nice value alone already weighs against the processes beside it)."""
    try:
        found = _AUTOGROUP_NICE.search(path.read_bytes())
    except FileNotFoundError:
        return None
    return int(found.group(1)) if found else None


def _write_retrying(path: Path, text: str) -> None:
    """Write ``text``, again while the kernel answers that another change came too recently."""
    for attempt in range(1, _AUTOGROUP_TRIES + 1):
        try:
            path.write_text(text)
        except OSError as err:
            if err.errno != errno.EAGAIN or attempt == _AUTOGROUP_TRIES:
                raise
            time.sleep(0.1)
        else:
            return


def main() -> int:
    """Settings come from the parent over stdin, so secrets never sit in argv or environ."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # by default it kills, until run() handles it
    _stop_with_parent()
    reports = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot garble a report
    match pickle.load(sys.stdin.buffer):  # noqa: S301 - our parent's own pipe
        case (Settings() as settings, RuleSet() | None as predecessor):
            configure_logging(settings.log_format, settings.log_level)
            _stand_back(settings.engine_nice)
            with asyncio.Runner(loop_factory=event_loop) as runner:
                runner.run(run(settings, predecessor, reports))
            return 0
    print("engine process: expected Settings and a RuleSet on stdin", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
