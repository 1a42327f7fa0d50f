"""Running the service process: logging, the HTTP server, signals, and start-up errors."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from detector.ruleset.live import ChannelConfigError
from detector.ruleset.loader import RulesInvalid
from detector.service.admission import Admission, FairSite
from detector.service.app import create_app
from detector.service.database import database
from detector.service.engine_process import EngineProcessFailed
from detector.service.logs import configure_logging
from detector.service.metrics import share_across_processes
from detector.service.settings import Settings

log = structlog.get_logger(__name__)

LISTEN_BACKLOG = 65535
"""Connections the kernel queues until the server accepts them (it caps this at
net.core.somaxconn, 4,096 by default). Alertmanager grouping by every label opens one connection
per alert at once in a storm; with aiohttp's default of 128 the queue overflowed, the kernel
dropped connection attempts and the senders retried them only after 1, 3, 7 s."""

LISTEN_QUEUES = 4
"""Listening sockets per address on Linux, sharing the port (``SO_REUSEPORT``): the kernel
spreads new connections over them, and each has a queue of its own. With the default cap one
queue held 4,096 connections, fewer than a 20,000-alert storm had waiting at once while the
engine worked beside the intake; attempts it dropped, an unrelated alert's among them, waited
for the sender's retry (about 8 s in the storm benchmark)."""

OPEN_FILES_WANTED = 65_536
"""Open files (connections among them) each process raises its limit to where the system allows.
Alertmanager opened 8,600 connections for a 20,000-alert storm, and a process out of file
descriptors cannot take the next connection (the intake pauses accepting, ``ACCEPT_PAUSE_S``),
which its sender counts as a failed attempt once it times out."""
OPEN_FILES_FEWEST = 16_384
"""Below this limit the service warns at start: about twice what that storm had open."""

SHUTDOWN_TIMEOUT_S = 10.0
"""How long open HTTP connections get to finish on shutdown, before the engine child stops."""


class DatabaseUnreachable(Exception):
    """The configured database could not be reached at start-up; the message holds no part of
    its URL."""


def serve(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; invalid rules or an unreachable database stop start-up with
    a plain message."""
    configure_logging(settings.log_format, settings.log_level)
    allow_open_files()
    if not (settings.run_engine and settings.engine_process):
        return _run(create_app(settings), settings)
    with tempfile.TemporaryDirectory(prefix="stormwatch-metrics-", dir=_in_memory()) as shared:
        share_across_processes(Path(shared))
        return _run(create_app(settings, engine_process=True), settings)


def allow_open_files() -> None:
    """Raise this process's limit on open files (its children inherit it) to what the system
    allows, as Go programs do by themselves: many systems start services with a soft limit of
    1,024, far below what a storm's connections need (``OPEN_FILES_WANTED``). Warns when the
    limit stays below ``OPEN_FILES_FEWEST``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):  # macOS refuses past its own maximum
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    if soft != resource.RLIM_INFINITY and soft < OPEN_FILES_FEWEST:
        log.warning("service.few_open_files", limit=soft, wanted=OPEN_FILES_WANTED)


def _in_memory() -> str | None:
    """A memory-backed directory for the shared metric files where there is one (Linux's
    /dev/shm), else the default temporary directory.

    Every counter update writes its file's mapped page; on a disk-backed directory the kernel
    would keep writing those pages back to disk.
    """
    shm = Path("/dev/shm")  # noqa: S108 - a private directory is created inside it
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


YOUNG_COLLECTION_EVERY = 50_000
"""Objects allocated (less those freed) between collections of the youngest generation; Python's
default is 700. In a storm the intake holds a thousand connections' requests, futures and
parsers alive at once, and every young collection walked them all again: a 20,000-alert storm
spent 1.0 CPU s of the intake and 0.4 of the engine in the collector, 0.16 and 0.14 at 50,000
(each collection then takes about 20 ms, once every few hundred webhooks). Most objects are freed
by reference counting anyway; the collector is only for cycles, which wait a little longer."""


async def tune_garbage_collection(_app: web.Application | None = None) -> None:
    """Keep what start-up built (rules, schemas, pools, clients) out of garbage collection, and
    collect the young generation less often (``YOUNG_COLLECTION_EVERY``).

    Start-up's objects live as long as the process, yet every full collection would walk all of
    them again; frozen, collections stay short and stop adding tens of milliseconds to the
    slowest webhook answers.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)


def _run(app: web.Application, settings: Settings) -> int:
    app.on_startup.insert(0, lambda _app: _check_database(settings))  # before the pool opens
    app.on_startup.append(tune_garbage_collection)
    try:
        run_until_stopped(app, listening_sockets(settings.host, settings.port))
    except RulesInvalid as err:
        print("cannot start: the rules directory has errors:", file=sys.stderr)
        for error in err.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except (ChannelConfigError, EngineProcessFailed, DatabaseUnreachable) as err:
        print(f"cannot start: {err}", file=sys.stderr)
        return 1
    return 0


def run_until_stopped(app: web.Application, sockets: list[socket.socket]) -> None:
    """Serve ``app`` on ``sockets`` until SIGTERM or SIGINT, as ``aiohttp.web.run_app`` does,
    but through :class:`~detector.service.admission.Admission`, which run_app cannot take."""
    loop = event_loop()
    asyncio.set_event_loop(loop)
    serving = loop.create_task(_serve(app, sockets))
    try:
        loop.run_until_complete(serving)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        _cancel(loop, {serving})  # the server's clean-up, while the rest still runs
        _cancel(loop, asyncio.all_tasks(loop))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _cancel(loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def _serve(app: web.Application, sockets: list[socket.socket]) -> None:
    runner = web.AppRunner(
        app, handle_signals=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    try:
        await runner.setup()
        assert runner.server is not None  # set by setup
        admission = Admission(runner.server, asyncio.get_running_loop())
        for sock in sockets:
            await FairSite(runner, sock, admission).start()
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        await runner.cleanup()


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """The sockets to serve on: for every address ``host`` resolves to, :data:`LISTEN_QUEUES`
    sharing ``port`` on Linux (one elsewhere, where the kernel does not spread connections).

    A port something already listens on is refused (``OSError``) before the sockets are made,
    as a single socket would be: sockets that share a port would otherwise share it with any
    process of the same user, a second instance started by mistake among them.
    """
    queues = LISTEN_QUEUES if sys.platform == "linux" else 1
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = dict.fromkeys((family, address) for family, _, _, _, address in found)
    sockets: list[socket.socket] = []
    try:
        for family, address in addresses:
            socket.create_server(address, family=family).close()  # in use: refused here
            sockets += [
                socket.create_server(
                    address, family=family, backlog=LISTEN_BACKLOG, reuse_port=queues > 1
                )
                for _ in range(queues)
            ]
    except OSError:
        for opened in sockets:
            opened.close()
        raise
    return sockets


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
    try:
        await _check_database(settings)
    except DatabaseUnreachable as err:
        print(f"cannot migrate: {err}", file=sys.stderr)
        return 1
    async with database(settings):
        pass
    return 0


async def _check_database(settings: Settings) -> None:
    """Connect once to the configured database, reporting a failure by its kind alone.

    asyncpg's messages can quote parts of the URL, password included (one with an unencoded
    character that Settings did not catch is parsed as a host, port or database name).
    """
    if settings.database_url is None:
        return  # the embedded database: its URL is made at start and holds no secret
    try:
        connection = await asyncpg.connect(settings.database_url.get_secret_value())
    except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        raise DatabaseUnreachable(
            f"cannot connect to the database at STORMWATCH_DATABASE_URL ({type(err).__name__})"
        ) from None
    await connection.close()
