"""Running the service process: logging, the HTTP server, signals, and start-up errors."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from detector.app import create_app, database
from detector.engine_process import EngineProcessFailed
from detector.logs import configure_logging
from detector.metrics import share_across_processes
from detector.ruleset.live import ChannelConfigError
from detector.ruleset.loader import RulesInvalid
from detector.settings import Settings


def serve(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; an invalid rules directory stops start-up with its errors."""
    configure_logging(settings.log_format, settings.log_level)
    if not (settings.run_engine and settings.engine_process):
        return _run(create_app(settings), settings)
    with tempfile.TemporaryDirectory(prefix="stormwatch-metrics-", dir=_in_memory()) as shared:
        share_across_processes(Path(shared))
        return _run(create_app(settings, engine_process=True), settings)


def _in_memory() -> str | None:
    """A memory-backed directory for the shared metric files where there is one (Linux's
    /dev/shm), else the default temporary directory.

    Every counter update writes its file's mapped page; on a disk-backed directory the kernel
    would keep writing those pages back to disk.
    """
    shm = Path("/dev/shm")  # noqa: S108 - a private directory is created inside it
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


async def freeze_start_up_objects(_app: web.Application | None = None) -> None:
    """Keep what start-up built (rules, schemas, pools, clients) out of garbage collection.

    Those objects live as long as the process, yet every full collection would walk all of them
    again; frozen, collections stay short and stop adding tens of milliseconds to the slowest
    webhook answers.
    """
    gc.collect()
    gc.freeze()


def _run(app: web.Application, settings: Settings) -> int:
    app.on_startup.append(freeze_start_up_objects)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=None,
            access_log=None,
            shutdown_timeout=10,
            loop=event_loop(),
        )
    except RulesInvalid as err:
        print("cannot start: the rules directory has errors:", file=sys.stderr)
        for error in err.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except (ChannelConfigError, EngineProcessFailed) as err:
        print(f"cannot start: {err}", file=sys.stderr)
        return 1
    return 0


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it serves webhooks markedly faster), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on some platforms
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def migrate_only(settings: Settings) -> int:
    """Apply migrations (``database`` migrates on open) and exit."""
    configure_logging(settings.log_format, settings.log_level)
    async with database(settings):
        pass
    return 0
