"""Component statuses under ``/api/v1`` (bearer ``API_TOKEN`` when configured): what each
component shows and why, and setting or clearing a status by hand."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.domain.fieldpath import field_path
from detector.store import component_status
from detector.web.context import SERVICES, Services
from detector.web.responses import error
from responders.statuspage.model import ComponentLevel


class StatusBody(BaseModel):
    """Body of ``PUT /api/v1/components/{name}/status``."""

    model_config = ConfigDict(extra="forbid")
    status: ComponentLevel
    by: str = Field(default="api", min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


async def list_components(request: web.Request) -> web.Response:
    """``GET /api/v1/components``: each component's status, and who set it if a person did."""
    services = request.app[SERVICES]
    state = await services.status_page.read()
    async with services.pool.acquire() as connection:
        overrides = await component_status.overrides(connection)
    rows: list[dict[str, Any]] = []
    for shown in state.components:
        override = overrides.get(shown.name)
        rows.append(
            {
                "name": shown.name,
                "display_name": shown.display_name,
                "status": shown.status.value,
                "since": shown.since.isoformat() if shown.since else None,
                "set_by": override.set_by if override else None,
                "set_at": override.set_at.isoformat() if override else None,
                "reason": override.reason if override else None,
            }
        )
    return web.json_response({"components": rows})


async def set_status(request: web.Request) -> web.Response:
    """``PUT /api/v1/components/{name}/status`` with ``{"status", "by", "reason"}``."""
    services = request.app[SERVICES]
    name = request.match_info["name"]
    if unknown := _unknown(services, name):
        return unknown
    try:
        body = StatusBody.model_validate_json(await request.read())
    except ValidationError as err:
        first = err.errors()[0]
        return error(400, first["msg"], field=field_path(first["loc"]) or "body")
    async with services.pool.acquire() as connection, connection.transaction():
        override = await component_status.set_status(
            connection, name, body.status, body.by, body.reason, services.clock.now()
        )
    return web.json_response(
        {
            "name": name,
            "status": override.status.value,
            "set_by": override.set_by,
            "set_at": override.set_at.isoformat(),
            "reason": override.reason,
        }
    )


async def clear_status(request: web.Request) -> web.Response:
    """``DELETE /api/v1/components/{name}/status``: back to what incidents and windows say."""
    services = request.app[SERVICES]
    name = request.match_info["name"]
    if unknown := _unknown(services, name):
        return unknown
    async with services.pool.acquire() as connection, connection.transaction():
        cleared = await component_status.clear(connection, name)
    return web.json_response({"name": name, "cleared": cleared})


def _unknown(services: Services, name: str) -> web.Response | None:
    """A 404 naming the field when the rules define no component ``name``."""
    if name in services.rules.current.components:
        return None
    return error(404, f"no such component {name!r}", field="name")


def routes() -> list[web.RouteDef]:
    """The component routes."""
    return [
        web.get("/api/v1/components", list_components),
        web.put("/api/v1/components/{name}/status", set_status),
        web.delete("/api/v1/components/{name}/status", clear_status),
    ]
