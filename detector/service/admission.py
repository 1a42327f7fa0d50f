"""Fair admission of new connections: a storm's connections take turns with everyone else's.

Grouping by every label, Alertmanager sends each alert of a storm on its own request, and dials
a new connection for each one that finds none idle. The kernel's listen queues are first in,
first out, and the server took one connection per queue each turn of its event loop. An alert
of another rule sent on a new connection then waited behind the whole storm: 0.6 to 1.2 s at
N = 20,000, and up to 5.9 s before pacing (docs/performance.md, *Alert storms*).

The intake now takes every waiting connection off its queues at once. It looks at each one's
first bytes without reading them (``MSG_PEEK``) and sorts it into a lane: the first alert's
name, or the request line for anything else (a readiness probe, a status page view). It then
hands connections to the HTTP server a few per turn, taking lanes in turn. Within a lane they
keep their arrival order. The server works at the same pace as before, and a storm costs every
other lane one turn at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

ADMITTED_PER_TURN = 4
"""Connections handed to the HTTP server per turn of the event loop: as many as it accepted
before from its four listening sockets (libuv takes one per socket per wake-up). Accepting
faster made Alertmanager and the intake spend more on connections in flight and the storm
slower (16 to 128 sockets, and asyncio's loop, in docs/performance.md)."""

PEEK_BYTES = 2048
"""Enough of a request for its headers and the start of its body: Alertmanager's JSON names
the first alert's labels, ``alertname`` first among them, within its first few hundred bytes."""

DEFER_ACCEPT_S = 1
"""``TCP_DEFER_ACCEPT``: the kernel queues a connection only once its first data arrived, so
the peek finds the request at once instead of waiting for it on the event loop."""

ACCEPT_PAUSE_S = 0.1
"""How long accepting pauses after the process ran out of file descriptors, rather than trying
again (and logging) every turn while the queued connections wait."""

T = TypeVar("T")

_ALERTNAME = re.compile(rb'"alertname"\s*:\s*"((?:[^"\\]|\\.){1,256})"')


def lane_of(head: bytes) -> bytes:
    """The lane of a connection whose first bytes are ``head``: its first alert's name where
    they hold one, else its request line (its first line, shortened)."""
    found = _ALERTNAME.search(head)
    if found:
        return found.group(1)
    return head.split(b"\r\n", 1)[0][:200]


class Lanes(Generic[T]):
    """Items waiting by lane: taken one lane after another, oldest first within a lane."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, deque[T]] = {}
        self._turns: deque[bytes] = deque()

    def __len__(self) -> int:
        return sum(len(items) for items in self._waiting.values())

    def __bool__(self) -> bool:
        return bool(self._turns)  # every lane holding an item has a turn

    def add(self, lane: bytes, item: T) -> None:
        """Queue ``item`` behind its lane's; a lane new or emptied joins the end of the turns."""
        items = self._waiting.get(lane)
        if items is None:
            self._waiting[lane] = deque([item])
            self._turns.append(lane)
        else:
            items.append(item)

    def take(self, count: int) -> list[T]:
        """Up to ``count`` items, the oldest of each lane in turn."""
        taken: list[T] = []
        while self._turns and len(taken) < count:
            lane = self._turns.popleft()
            items = self._waiting[lane]
            taken.append(items.popleft())
            if items:
                self._turns.append(lane)
            else:
                del self._waiting[lane]
        return taken

    def clear(self) -> list[T]:
        """Every waiting item, the queue left empty."""
        items = [item for lane in self._turns for item in self._waiting[lane]]
        self._waiting.clear()
        self._turns.clear()
        return items


class Admission:
    """Accepts connections from listening sockets, peeks at each, and hands them to ``server``
    :data:`ADMITTED_PER_TURN` per event-loop turn, lanes in turn (:class:`Lanes`)."""

    def __init__(self, server: web.Server, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._loop = loop
        self._lanes: Lanes[socket.socket] = Lanes()
        self._unread: set[socket.socket] = set()
        self._handing: set[asyncio.Task[object]] = set()
        self._listening: list[socket.socket] = []
        self._release_due = False

    def listen(self, sock: socket.socket) -> None:
        """Start accepting from ``sock``."""
        sock.setblocking(False)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
        self._listening.append(sock)
        self._loop.add_reader(sock.fileno(), self._accept, sock)

    def stop(self, sock: socket.socket) -> None:
        """Stop accepting from ``sock`` and close it; with the last one, close every connection
        not yet handed over (never answered: their senders retry)."""
        self._loop.remove_reader(sock.fileno())
        self._listening.remove(sock)
        sock.close()
        if self._listening:
            return
        for unread in self._unread:
            self._loop.remove_reader(unread.fileno())
        for held in (*self._unread, *self._lanes.clear()):
            held.close()
        self._unread.clear()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                connection, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # reset while it waited in the queue
                continue
            except OSError as err:  # out of file descriptors: the queue keeps the rest
                log.warning("intake.accept_paused", error=err.strerror, seconds=ACCEPT_PAUSE_S)
                self._loop.remove_reader(sock.fileno())
                self._loop.call_later(ACCEPT_PAUSE_S, self._resume, sock)
                return
            connection.setblocking(False)
            self._peek(connection)

    def _resume(self, sock: socket.socket) -> None:
        if sock in self._listening:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _peek(self, connection: socket.socket) -> None:
        try:
            head = connection.recv(PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self._unread.add(connection)
            self._loop.add_reader(connection.fileno(), self._readable, connection)
            return
        except OSError:
            connection.close()
            return
        self._lanes.add(lane_of(head), connection)
        if not self._release_due:
            self._release_due = True
            self._loop.call_soon(self._release)

    def _readable(self, connection: socket.socket) -> None:
        self._loop.remove_reader(connection.fileno())
        self._unread.discard(connection)
        self._peek(connection)

    def _release(self) -> None:
        """Hand over this turn's connections, and come back next turn while any wait."""
        for connection in self._lanes.take(ADMITTED_PER_TURN):
            handing = self._loop.create_task(
                self._loop.connect_accepted_socket(self._server, connection)
            )
            self._handing.add(handing)
            handing.add_done_callback(_closing_on_failure(connection, self._handing))
        self._release_due = bool(self._lanes)
        if self._release_due:
            self._loop.call_soon(self._release)


def _closing_on_failure(
    connection: socket.socket, handing: set[asyncio.Task[object]]
) -> Callable[[asyncio.Task[object]], None]:
    def done(task: asyncio.Task[object]) -> None:
        handing.discard(task)
        if task.cancelled() or task.exception() is not None:
            with contextlib.suppress(OSError):
                connection.close()

    return done


class FairSite(web.BaseSite):
    """An aiohttp site serving an already listening socket through an :class:`Admission`."""

    __slots__ = ("_admission", "_sock")

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, admission: Admission) -> None:
        super().__init__(runner)
        self._sock = sock
        self._admission = admission

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        self._admission.listen(self._sock)

    async def stop(self) -> None:
        self._admission.stop(self._sock)
        await super().stop()
