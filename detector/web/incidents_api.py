"""The incident API under ``/api/v1`` (bearer ``API_TOKEN`` when configured)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.domain.fieldpath import field_path
from detector.domain.model import Decision, IncidentState
from detector.engine import actions
from detector.engine.impact import current_impact
from detector.store import intake_log, queries
from detector.store import signals as inbox
from detector.web.context import SERVICES, Services
from detector.web.responses import actor, bad_request, error, int_param

_OPEN = (IncidentState.TRIGGERED.value, IncidentState.ACKNOWLEDGED.value)
_ALL = (*_OPEN, IncidentState.RESOLVED.value)
_STATE_FILTERS = {"open": _OPEN, "all": _ALL, **{state: (state,) for state in _ALL}}


class ActionBody(BaseModel):
    """Optional body of ack and resolve: who did it (else the ``X-Stormwatch-Actor`` header,
    else ``api``), why, and through what (``cli`` when the command line sends it)."""

    model_config = ConfigDict(extra="forbid")
    by: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str = Field(default="resolved by hand", min_length=1, max_length=2000)
    via: Literal["api", "cli"] = "api"


async def list_incidents(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents?state=open|all|triggered|acknowledged|resolved&limit=N``."""
    state = request.query.get("state", "all")
    if state not in _STATE_FILTERS:
        return error(400, f"must be one of {', '.join(_STATE_FILTERS)}", field="state")
    limit = int_param(request.query.get("limit", "100"), "limit", maximum=1000)
    async with request.app[SERVICES].pool.acquire() as connection:
        incidents = await queries.list_incidents(connection, _STATE_FILTERS[state], limit)
    return web.json_response({"incidents": incidents})


async def show_incident(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents/{id}`` with alerts, timeline and business impact."""
    incident_id = int_param(request.match_info["id"], "id")
    services = request.app[SERVICES]
    async with services.pool.acquire() as connection:
        detail = await queries.incident_detail(connection, incident_id)
        if detail is None:
            return error(404, "no such incident", field="id")
        impact = await current_impact(
            connection,
            services.rules.current,
            incident_id,
            detail["rule"],
            detail["component"],
            datetime.fromisoformat(detail["opened_at"]),
        )
    detail["impact"] = impact.as_json() | {"summary": impact.describe()}
    return web.json_response(detail)


async def acknowledge(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/ack`` — stops escalation."""
    return await _act(
        request,
        lambda s, incident_id, body: actions.acknowledge(
            s.pool, incident_id, actor(request, body.by), body.via, s.rules.current, s.clock.now()
        ),
    )


async def resolve(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/resolve``."""
    return await _act(
        request,
        lambda s, incident_id, body: actions.resolve(
            s.pool,
            incident_id,
            actor(request, body.by),
            body.reason,
            s.rules.current,
            s.clock.now(),
        ),
    )


async def _act(
    request: web.Request, call: Callable[[Services, int, ActionBody], Awaitable[Decision]]
) -> web.Response:
    services = request.app[SERVICES]
    incident_id = int_param(request.match_info["id"], "id")
    body = await _action_body(request)
    try:
        decision = await call(services, incident_id, body)
    except actions.IncidentNotFound:
        return error(404, "no such incident", field="id")
    services.metrics.acknowledged(decision)
    if decision.incident is not None:
        services.engine.wake()
    return web.json_response({"id": incident_id, "result": decision.reason})


async def unmatched_signals(request: web.Request) -> web.Response:
    """``GET /api/v1/signals/unmatched``: stored alerts no rule matched (a rule may be missing)."""
    limit = int_param(request.query.get("limit", "100"), "limit", maximum=1000)
    async with request.app[SERVICES].pool.acquire() as connection:
        rows = await inbox.unmatched(connection, limit)
    return web.json_response({"signals": queries.json_rows(rows)})


async def rejected_webhooks(request: web.Request) -> web.Response:
    """``GET /api/v1/webhooks/rejected``: recently rejected bodies with the field and reason."""
    limit = int_param(request.query.get("limit", "50"), "limit", maximum=1000)
    async with request.app[SERVICES].pool.acquire() as connection:
        rows = await intake_log.rejected(connection, limit)
    return web.json_response({"rejected": queries.json_rows(rows)})


async def _action_body(request: web.Request) -> ActionBody:
    raw = await request.read()
    if not raw.strip():
        return ActionBody()
    try:
        return ActionBody.model_validate_json(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise bad_request(first["msg"], field_path(first["loc"]) or "body") from None


def routes() -> list[web.RouteDef]:
    """The API's routes."""
    return [
        web.get("/api/v1/incidents", list_incidents),
        web.get("/api/v1/incidents/{id}", show_incident),
        web.post("/api/v1/incidents/{id}/ack", acknowledge),
        web.post("/api/v1/incidents/{id}/resolve", resolve),
        web.get("/api/v1/signals/unmatched", unmatched_signals),
        web.get("/api/v1/webhooks/rejected", rejected_webhooks),
    ]
