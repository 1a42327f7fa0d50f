"""The load generator: a small asyncio HTTP/1.1 client and one worker process's share of a run.

One keep-alive connection per concurrent sender, as Go's client uses. Runs a) and c) are closed
loops (the next request leaves when the previous answer is in), run b) an open loop (requests
offered on a fixed schedule whatever the answers do, each timed from its slot).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from payloads import GROUPS, Feed, request_template

from detector.service.serve import event_loop

SCHEDULE_SLACK_S = 0.002  # an open-loop request sent later than this after its slot is late


def _content_length(head: bytearray) -> int:
    """The body size announced in a response head (0 when absent, as for 204)."""
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    end = head.find(b"\r\n", start + 2)
    return int(head[start + 17 : end if end >= 0 else len(head)])


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time, like Go's client.

    Hand-rolled because the load generator shares 2 cores with the server under test: aiohttp's
    client measured 114 µs of CPU per webhook, this one 37 µs. It expects Content-Length
    responses, which is what aiohttp servers send.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to write requests to."""
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the request in flight: its outcome is unknown."""
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("connection closed"))

    def data_received(self, data: bytes) -> None:
        """Complete the waiting request once its whole response is in."""
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        size = end + 4 + _content_length(self._buffer[:end])
        if len(self._buffer) < size:
            return
        status = int(self._buffer[9:12])
        del self._buffer[:size]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(status)

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write one request; the future gives the response status."""
        assert self._transport is not None
        self._waiter = self._loop.create_future()
        self._transport.write(request)
        return self._waiter


async def connect(host: str, port: int) -> HttpConnection:
    """Open a connection (asyncio sets TCP_NODELAY)."""
    _, protocol = await asyncio.get_running_loop().create_connection(HttpConnection, host, port)
    return protocol


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs; plain data so it pickles."""

    mode: str  # "closed" or "open"
    host: str
    port: int
    token: str
    connections: int
    rate: float
    duration: float
    grace: float
    max_requests: int
    alerts: int
    replay_share: float
    tag: int
    times: tuple[str, str]
    start_at: float  # time.monotonic() value, shared by all worker processes


@dataclass
class Tally:
    """What one worker saw in one run; the parent merges them."""

    alerts: int
    ok: int = 0
    acked_groups: set[int] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    offered: int = 0
    late: int = 0  # open loop: sent more than SCHEDULE_SLACK_S after the slot (wait included)
    started: float = 0.0
    finished: float = 0.0
    client_cpu: float = 0.0

    def record(self, group: int, status: int, latency: float) -> None:
        """Count one answered request; only 2xx means stored."""
        self.finished = time.monotonic()
        if 200 <= status < 300:
            self.ok += 1
            self.acked_groups.add(group)
            self.latencies.append(latency)
        else:
            self.failures[f"HTTP {status}"] += 1


class Driver:
    """Sends one worker's share of a run from one event loop."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.tally = Tally(spec.alerts)
        authority = f"{spec.host}:{spec.port}"
        tag = f"{spec.tag:02x}"
        templates = [
            request_template(v, spec.alerts, tag, spec.times, authority, spec.token)
            for v in range(len(GROUPS))
        ]
        self.feed = Feed(templates, spec.replay_share, spec.tag, spec.max_requests)

    async def run(self) -> Tally:
        """Connect, wait for the common start, drive, and let in-flight requests finish."""
        spec = self.spec
        connections = [await connect(spec.host, spec.port) for _ in range(spec.connections)]
        await asyncio.sleep(max(0.0, spec.start_at - time.monotonic()))
        cpu = time.process_time()
        self.tally.started = self.tally.finished = time.monotonic()
        deadline = self.tally.started + spec.duration
        if spec.mode == "open":
            tasks = await self._open_loop(connections, deadline)
        else:
            tasks = [asyncio.create_task(self._keep_sending(c, deadline)) for c in connections]
        await self._finish(tasks, deadline + spec.grace)
        self.tally.client_cpu = time.process_time() - cpu
        return self.tally

    async def _keep_sending(self, connection: HttpConnection | None, deadline: float) -> None:
        """Closed loop: the next request leaves as soon as the previous answer is in."""
        while time.monotonic() < deadline:
            if connection is None or connection.closed:
                connection = await self._reconnect(deadline)
                continue
            item = self.feed.next()
            if item is None:
                return
            await self._exchange(connection, *item)

    async def _open_loop(
        self, connections: list[HttpConnection], deadline: float
    ) -> list[asyncio.Task[None]]:
        """Offer requests on a fixed schedule whatever the answers do.

        A request whose slot comes while every connection is busy waits for one, and its
        latency runs from the slot, not from the write: a server that stalls cannot hide the
        stall by holding the requests back (coordinated omission).
        """
        idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for connection in connections:
            idle.put_nowait(connection)
        interval = 1.0 / self.spec.rate
        tasks: list[asyncio.Task[None]] = []
        for slot in range(int(self.spec.rate * self.spec.duration)):
            due = self.tally.started + slot * interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            item = self.feed.next()
            if item is None:
                break
            self.tally.offered += 1
            tasks.append(asyncio.create_task(self._on_schedule(idle, *item, due, deadline)))
        return tasks

    async def _on_schedule(
        self,
        idle: asyncio.Queue[HttpConnection],
        group: int,
        request: bytes,
        due: float,
        deadline: float,
    ) -> None:
        """Open loop: send on a free connection, timed from the slot; give it (or a fresh one)
        back after."""
        try:
            connection = await idle.get()
        except asyncio.CancelledError:
            self.tally.failures["never sent: no free connection by hard stop"] += 1
            raise
        if time.monotonic() - due > SCHEDULE_SLACK_S:
            self.tally.late += 1
        await self._exchange(connection, group, request, since=due)
        replacement = await self._reconnect(deadline) if connection.closed else connection
        if replacement is not None:
            idle.put_nowait(replacement)

    async def _exchange(
        self, connection: HttpConnection, group: int, request: bytes, since: float | None = None
    ) -> None:
        """One request and its answer, latency measured from ``since`` (default: the write).

        Failures after which the server may have stored the alerts anyway are named "unknown",
        so a durability mismatch they cause is not mistaken for lost alerts.
        """
        sent = time.monotonic() if since is None else since
        try:
            status = await connection.send(request)
        except ConnectionError:
            self.tally.failures["connection lost (outcome unknown)"] += 1
            return
        except asyncio.CancelledError:
            self.tally.failures["unanswered at hard stop (outcome unknown)"] += 1
            raise
        self.tally.record(group, status, time.monotonic() - sent)

    async def _reconnect(self, deadline: float) -> HttpConnection | None:
        """Keep the connection count when the server closes one; give up at the deadline."""
        while time.monotonic() < deadline:
            try:
                return await connect(self.spec.host, self.spec.port)
            except OSError:
                self.tally.failures["connect failed"] += 1
                await asyncio.sleep(0.05)
        return None

    @staticmethod
    async def _finish(tasks: list[asyncio.Task[None]], hard_stop: float) -> None:
        """Give requests in flight until the hard stop, then cancel them (counted unknown)."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, hard_stop - time.monotonic()))
        for task in pending:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome


def run_worker(spec: WorkerSpec) -> Tally:
    """Process-pool entry point: one event loop per worker process, uvloop's like the server's
    (it halves the generator's CPU, which the server under test would otherwise lose).

    The cycle collector is off while driving: a full collection over the run's tasks and
    latencies paused this process for tens of milliseconds, and every answer arriving then was
    timed as a slow answer from the server. A run is bounded, so the garbage it holds is too.
    """
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=event_loop) as runner:
            return runner.run(Driver(spec).run())
    finally:
        gc.enable()
