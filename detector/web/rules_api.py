"""Rule set status and reload under ``/api/v1/rules`` (bearer ``API_TOKEN`` when configured)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from detector.ruleset.live import ReloadStatus
from detector.web.context import SERVICES, Services


def _status_body(services: Services, status: ReloadStatus) -> dict[str, Any]:
    rules = services.rules.current
    return {
        "last_reload": {
            "success": status.ok,
            "at": status.at.isoformat(),
            "errors": list(status.errors),
            "warnings": list(status.warnings),
        },
        "running": {
            "rules": sorted(rules.rules),
            "files": list(rules.files),
            "channels": sorted(rules.channels),
            "escalation_policies": sorted(rules.policies),
            "people": sorted(rules.people),
            "schedules": sorted(rules.schedules),
        },
    }


async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/rules/status``: the running rule set and how the last reload went."""
    services = request.app[SERVICES]
    return web.json_response(_status_body(services, services.rules.status))


async def reload(request: web.Request) -> web.Response:
    """``POST /api/v1/rules/reload``: 200 when swapped in, 422 with the errors when rejected."""
    services = request.app[SERVICES]
    outcome = services.reloader.reload("api")
    return web.json_response(_status_body(services, outcome), status=200 if outcome.ok else 422)


def routes() -> list[web.RouteDef]:
    """The rules API routes."""
    return [web.get("/api/v1/rules/status", status), web.post("/api/v1/rules/reload", reload)]
