"""Entry point of the engine process that ``stormwatch serve`` starts (see engine_process.py).

Reads pickled Settings from stdin, runs the engine, the Alertmanager reconciler and the rules
watcher until SIGTERM, and reloads rules on SIGHUP.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys

from detector.app import engine_services
from detector.clock import SystemClock
from detector.engine_process import READY
from detector.logs import configure_logging
from detector.serve import event_loop, freeze_start_up_objects
from detector.settings import Settings


async def run(settings: Settings, ready_fd: int) -> None:
    """Run until SIGTERM or SIGINT, then let the engine finish its cycle.

    ``ready_fd`` is told once the engine runs, so the parent reports ready only then.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with engine_services(settings, SystemClock()) as services:
        loop.add_signal_handler(signal.SIGHUP, services.reloader.reload, "sighup")
        await freeze_start_up_objects()
        os.write(ready_fd, READY)
        os.close(ready_fd)
        await stop.wait()


def main() -> int:
    """Settings come from the parent over stdin, so secrets never sit in argv or environ."""
    ready_fd = int(sys.argv[1])
    settings = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - our parent's own pipe
    if not isinstance(settings, Settings):
        print("engine process: expected Settings on stdin", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    with asyncio.Runner(loop_factory=event_loop) as runner:
        runner.run(run(settings, ready_fd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
