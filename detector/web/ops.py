"""Operations endpoints: liveness, readiness and Prometheus metrics.

Readiness lists its checks, each ``ok``, ``failing`` or ``off`` (not run here), and exports them
as ``stormwatch_readiness_check`` at every scrape too, so Prometheus sees a failing part even
where nothing probes ``/readyz``. Only the database decides the status code: without it no
webhook can be stored. A replica whose engine is restarting, or whose last rule edit was
rejected, still stores every webhook durably; taking it out of the load balancer for that would
turn a processing delay into an intake outage, so those checks are reported, not enforced.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from detector.service.metrics import Metrics
from detector.store.connection import UNAVAILABLE, ping
from detector.web.context import METRICS, SERVICES, Services

READY_WITHIN_S = 2.0
_NOT_READY: tuple[type[Exception], ...] = (*UNAVAILABLE, TimeoutError)
_unanswered: set[asyncio.Future[None]] = set()


class EngineStatus(Protocol):
    """The engine readiness asks about: this process's own, or the engine process."""

    @property
    def running(self) -> bool:
        """Whether it is doing its work now."""
        ...


ENGINE = web.AppKey("engine", EngineStatus)
"""The engine that runs for this replica; absent where none does (``RUN_ENGINE=false``)."""


class CheckState(StrEnum):
    """How one readiness check went."""

    OK = "ok"
    FAILING = "failing"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's state, and what an operator should know about it."""

    state: CheckState
    detail: str = ""

    def body(self) -> dict[str, str]:
        return (
            {"state": self.state, "detail": self.detail} if self.detail else {"state": self.state}
        )


def _forget(probe: asyncio.Future[None]) -> None:
    _unanswered.discard(probe)
    if not probe.cancelled():
        probe.exception()  # retrieved, so asyncio does not log it as lost


async def _database(services: Services) -> Check:
    """The database answers a query within ``READY_WITHIN_S``."""
    probe = asyncio.ensure_future(ping(services.pool))
    await asyncio.wait({probe}, timeout=READY_WITHIN_S)
    if not probe.done():
        # Not cancelled: cancelling a query waits on the same stalled connection. It ends
        # when the statement timeout drops the connection.
        _unanswered.add(probe)
        probe.add_done_callback(_forget)
        return Check(CheckState.FAILING, f"no answer within {READY_WITHIN_S:g} s")
    try:
        probe.result()
    except _NOT_READY as err:
        return Check(CheckState.FAILING, f"unreachable ({type(err).__name__})")
    return Check(CheckState.OK)


def _engine(engine: EngineStatus | None) -> Check:
    if engine is None:
        return Check(CheckState.OFF, "not run here (STORMWATCH_RUN_ENGINE=false)")
    if engine.running:
        return Check(CheckState.OK)
    return Check(CheckState.FAILING, "not running: restarting, or stalled (see engine.* logs)")


def _rules(services: Services) -> Check:
    status = services.rules.status
    if status.ok:
        return Check(CheckState.OK)
    return Check(
        CheckState.FAILING,
        f"the last reload was rejected ({len(status.errors)} errors, see /api/v1/rules/status);"
        " the rules loaded before it still run",
    )


async def _checks(app: web.Application, services: Services) -> dict[str, Check]:
    """Run every check and export the outcome."""
    checks = {
        "database": await _database(services),
        "engine": _engine(app.get(ENGINE)),
        "rules": _rules(services),
    }
    _export(app[METRICS], checks)
    return checks


def _export(metrics: Metrics, checks: dict[str, Check]) -> None:
    for name, check in checks.items():
        if check.state is not CheckState.OFF:
            metrics.readiness_check.labels(name).set(check.state is CheckState.OK)


async def healthz(_request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers (503 otherwise); every check is listed with its state."""
    services = request.app.get(SERVICES)
    if services is None:
        return web.json_response({"status": "starting"}, status=503)
    checks = await _checks(request.app, services)
    body: dict[str, Any] = {"checks": {name: check.body() for name, check in checks.items()}}
    if checks["database"].state is CheckState.FAILING:
        return web.json_response({"status": "database unreachable", **body}, status=503)
    return web.json_response(
        {"status": "ready", "rules": len(services.rules.current.rules), **body}
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the service's metrics, with the readiness checks run now."""
    services = request.app.get(SERVICES)
    if services is not None:
        await _checks(request.app, services)
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def routes() -> list[web.RouteDef]:
    """The operations routes."""
    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
