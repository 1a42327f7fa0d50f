"""The customers' stampede: GET requests for public documents over keep-alive connections,
closed loop (as fast as answers come) or open loop (a fixed rate whatever the answers do)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from dataclasses import dataclass, field

from load_client import HttpConnection, connect

from detector.service.serve import event_loop


@dataclass(frozen=True)
class PageLoadSpec:
    """One process's share of a page run; plain data so it pickles."""

    host: str
    port: int
    paths: tuple[str, ...]
    connections: int
    duration: float
    rate: float = 0.0  # 0: closed loop
    start_at: float = 0.0  # time.monotonic() shared with the other processes of a run


@dataclass
class PageTally:
    """What the load saw: 200s, other answers, latencies and the wall time they took."""

    ok: int = 0
    other: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def per_second(self) -> float:
        """200 answers per second."""
        return self.ok / self.elapsed if self.elapsed else 0.0

    def p99_ms(self) -> float:
        """99th percentile latency (nearest rank), in milliseconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)] * 1000


def request(host: str, port: int, path: str) -> bytes:
    """A browser-like GET, without conditional headers (a cold cache: the costlier case)."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n"
        "User-Agent: stormwatch-bench\r\n\r\n"
    ).encode()


async def _drive(spec: PageLoadSpec) -> PageTally:
    tally = PageTally()
    connections = [await connect(spec.host, spec.port) for _ in range(spec.connections)]
    requests = itertools.cycle([request(spec.host, spec.port, p) for p in spec.paths])
    await asyncio.sleep(max(0.0, spec.start_at - time.monotonic()))
    started = time.monotonic()
    deadline = started + spec.duration

    async def exchange(connection: HttpConnection, since: float) -> None:
        status = await connection.send(next(requests))
        if status == 200:
            tally.ok += 1
            tally.latencies.append(time.monotonic() - since)
        else:
            tally.other += 1

    async def closed(connection: HttpConnection) -> None:
        while time.monotonic() < deadline:
            await exchange(connection, time.monotonic())

    if spec.rate > 0:
        idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for connection in connections:
            idle.put_nowait(connection)

        async def on_slot(due: float) -> None:
            connection = await idle.get()
            await exchange(connection, due)
            idle.put_nowait(connection)

        tasks = []
        for slot in range(int(spec.rate * spec.duration)):
            due = started + slot / spec.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(on_slot(due)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    else:
        await asyncio.gather(*(closed(c) for c in connections))
    tally.elapsed = time.monotonic() - started
    return tally


def run_page_load(spec: PageLoadSpec) -> PageTally:
    """Process-pool entry point (uvloop, collector off while driving, as the ingest load)."""
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=event_loop) as runner:
            return runner.run(_drive(spec))
    finally:
        gc.enable()
