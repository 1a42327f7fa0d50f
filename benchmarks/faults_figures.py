"""The faults benchmark's receiving end, which records every page, and one case's figures from
what it recorded: first-page lateness (also net of database outages) and double sends."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web
from servers import free_port

Outages = list[tuple[float, float]]
"""When the database was stopped and when it answered again (monotonic times)."""


@dataclass
class Receiver:
    """Records every page (when it arrived, its idempotency key, its alert's cluster) and
    answers after ``delay``: a slow receiver keeps sends in flight, where a crash hits them."""

    delay: float
    pages: list[tuple[float, str, str]] = field(default_factory=list)
    url: str = ""

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/page", self._page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/page"
        return runner

    async def _page(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        cluster = body["incident"]["group"]["cluster"]
        self.pages.append((time.monotonic(), request.headers["Idempotency-Key"], cluster))
        await asyncio.sleep(self.delay)
        return web.json_response({"ok": True})


def _pct(ordered: list[float], share: float) -> str:
    if not ordered:
        return "-"
    return f"{ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]:.2f}"


def _down_between(outages: Outages, start: float, end: float) -> float:
    return sum(max(0.0, min(end, up) - max(start, down)) for down, up in outages)


@dataclass(frozen=True)
class Figures:
    """One case's first-page lateness (also without the time the database was down in between)
    and double sends."""

    name: str
    answered: int
    lateness: list[float]
    beyond_outages: list[float]
    gaps: list[float]
    down: float

    def row(self) -> str:
        raw, beyond = sorted(self.lateness), sorted(self.beyond_outages)
        longest = f"{max(self.gaps):.1f}" if self.gaps else "-"
        return (
            f"| {self.name} | {self.answered} | {self.answered - len(raw)} | {_pct(raw, 0.5)} | "
            f"{_pct(raw, 0.99)} | {_pct(raw, 1.0)} | {self.down:.1f} | {_pct(beyond, 0.99)} | "
            f"{len(self.gaps)} | {longest} |"
        )


def figures(name: str, answered: dict[str, float], receiver: Receiver, outages: Outages) -> Figures:
    first: dict[str, float] = {}
    sends: dict[str, list[float]] = {}
    for at, key, cluster in receiver.pages:
        first.setdefault(cluster, at)
        sends.setdefault(key, []).append(at)
    paged = [c for c in answered if c in first]
    lateness = [first[c] - answered[c] for c in paged]
    beyond = [first[c] - answered[c] - _down_between(outages, answered[c], first[c]) for c in paged]
    gaps = [times[1] - times[0] for times in sends.values() if len(times) > 1]
    down = sum(up - down for down, up in outages)
    return Figures(name, len(answered), lateness, beyond, gaps, down)
