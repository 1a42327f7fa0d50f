"""The paging benchmark's receiving end: a local endpoint noting when each incident's page (or
an Alertmanager webhook, for the reference) first arrived, and the p50/p99 figures printed from
those arrivals."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from servers import free_port


@dataclass
class Receiver:
    """A local endpoint that notes when each incident (by its ``incident`` label) or alert (by
    its ``alert`` label) first arrived, as pages, digests or Alertmanager webhooks."""

    arrived: dict[str, float] = field(default_factory=dict)
    pages: int = 0
    digests: int = 0

    def note(self, key: str) -> None:
        """Remember the first arrival of ``key``."""
        self.arrived.setdefault(key, time.monotonic())

    async def page(self, request: web.Request) -> web.Response:
        """A page or a digest from Stormwatch."""
        body = json.loads(await request.read())
        now = time.monotonic()
        if body.get("event") == "digest":
            self.digests += 1
            incidents = [page["incident"] for page in body["pages"]]
        else:
            self.pages += 1
            incidents = [body["incident"]] if body.get("event") == "triggered" else []
        for incident in incidents:
            self.arrived.setdefault(incident["group"].get("incident", ""), now)
        return web.json_response({"ok": True})

    async def webhook(self, request: web.Request) -> web.Response:
        """An Alertmanager webhook (the reference run)."""
        body = json.loads(await request.read())
        for alert in body["alerts"]:
            self.note(alert["labels"].get("alert", ""))
        return web.json_response({"ok": True})


async def serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    """The receiver on 127.0.0.1."""
    app = web.Application()
    app.add_routes(
        [web.post("/page", receiver.page), web.post("/api/v1/alertmanager", receiver.webhook)]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    return runner, f"http://127.0.0.1:{port}"


def percentiles(samples: Sequence[float]) -> tuple[float, float] | None:
    """p50 and p99 of ``samples`` (seconds), or None without samples."""
    if len(samples) < 2:
        return None
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def latencies(sent: dict[str, float], arrived: dict[str, float]) -> tuple[list[float], int]:
    """Sent → arrived for every key that arrived, and how many never did."""
    done = [arrived[key] - at for key, at in sent.items() if key in arrived]
    return done, len(sent) - len(done)


async def wait_for(arrived: dict[str, float], keys: Sequence[str], budget: float) -> None:
    """Until every key arrived or ``budget`` seconds passed."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if all(key in arrived for key in keys):
            return
        await asyncio.sleep(0.05)


def line(name: str, samples: Sequence[float], lost: int, target: str, ref: Any = None) -> str:
    """One figure: p50/p99 in ms, what never arrived, the target, and the ratio to Alertmanager."""
    cut = percentiles(samples)
    if cut is None:
        return f"  {name:<44} no samples ({lost} lost)"
    text = f"p50 {cut[0] * 1000:8.1f} ms  p99 {cut[1] * 1000:8.1f} ms"
    if ref is not None:
        text += f"  ({cut[0] / ref[0]:.1f}x, {cut[1] / ref[1]:.1f}x Alertmanager)"
    missing = f"  not arrived: {lost}" if lost else ""
    return f"  {name:<44} {text}{missing}   target {target}"
