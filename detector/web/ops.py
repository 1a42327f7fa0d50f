"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from detector.store.connection import ping
from detector.web.context import METRICS, SERVICES

READY_WITHIN_S = 2.0
_unanswered: set[asyncio.Future[None]] = set()


def _forget(probe: asyncio.Future[None]) -> None:
    _unanswered.discard(probe)
    if not probe.cancelled():
        probe.exception()  # retrieved, so asyncio does not log it as lost


async def healthz(_request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers and a valid rule set is loaded."""
    services = request.app.get(SERVICES)
    if services is None:
        return web.json_response({"status": "starting"}, status=503)
    probe = asyncio.ensure_future(ping(services.pool))
    await asyncio.wait({probe}, timeout=READY_WITHIN_S)
    if not probe.done():
        # Not cancelled: cancelling a query waits on the same stalled connection. It ends
        # when the statement timeout drops the connection.
        _unanswered.add(probe)
        probe.add_done_callback(_forget)
        return web.json_response({"status": "database unreachable"}, status=503)
    try:
        probe.result()
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        return web.json_response({"status": "database unreachable"}, status=503)
    return web.json_response({"status": "ready", "rules": len(services.rules.current.rules)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the service's metrics."""
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def routes() -> list[web.RouteDef]:
    """The operations routes."""
    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
