"""A parse-only aiohttp server: the ceiling the Stormwatch webhook path is measured against.

It does what any Python webhook receiver must do (read the body, parse the JSON, answer 200) and
nothing else, so ``service / bare`` shows what validation, storage and the commit cost on top.
Run as ``python benchmarks/bare_server.py PORT``; it serves until SIGTERM.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    """Read and parse the webhook, answer like the service does (count of alerts)."""
    payload = json.loads(await request.read())
    return web.json_response({"status": "accepted", "alerts": len(payload["alerts"])})


async def ready(_request: web.Request) -> web.Response:
    """Same readiness path as the service, so one wait loop serves both."""
    return web.json_response({"status": "ready"})


def main() -> None:
    """Serve on 127.0.0.1:PORT with access logging off, as ``stormwatch serve`` does."""
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.add_routes([web.post("/api/v1/alertmanager", receive), web.get("/readyz", ready)])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
