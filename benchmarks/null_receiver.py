"""A parse-and-count webhook receiver: how fast Alertmanager delivers with nothing behind it.

It reads and parses each webhook, remembers every distinct alert (fingerprint, startsAt,
status) and answers 200; ``GET /count`` tells how many it has seen, and when an alert of each
name first arrived. Run as
``python benchmarks/null_receiver.py PORT``; it serves until SIGTERM.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

from aiohttp import web

_seen: set[tuple[str, str, str, str]] = set()
_webhooks = [0]
_first_at: dict[str, float] = {}  # alert name → when (UNIX time) one first arrived


async def receive(request: web.Request) -> web.Response:
    """Parse the webhook and remember its alerts."""
    payload = json.loads(await request.read())
    _webhooks[0] += 1
    _seen.update(
        (a["labels"].get("alertname", ""), a["fingerprint"], a["startsAt"], a["status"])
        for a in payload["alerts"]
    )
    for alert in payload["alerts"]:
        _first_at.setdefault(alert["labels"].get("alertname", ""), time.time())
    return web.json_response({"status": "accepted", "alerts": len(payload["alerts"])})


async def count(_request: web.Request) -> web.Response:
    """Distinct alerts (of each name) and webhooks received so far, and when an alert of each
    name first arrived."""
    names = Counter(name for name, *_ in _seen)
    return web.json_response({"alerts": names, "webhooks": _webhooks[0], "first": _first_at})


async def ready(_request: web.Request) -> web.Response:
    """Same readiness path as the service, so one wait loop serves both."""
    return web.json_response({"status": "ready"})


def main() -> None:
    """Serve on 127.0.0.1:PORT with access logging off."""
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.add_routes(
        [
            web.post("/api/v1/alertmanager", receive),
            web.get("/count", count),
            web.get("/readyz", ready),
        ]
    )
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        print=None,
        access_log=None,
        backlog=4096,  # as the service: a storm opens one connection per alert at once
    )


if __name__ == "__main__":
    main()
