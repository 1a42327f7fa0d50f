"""The notices API under ``/api/v1/incidents/{id}``: updates, the first-notice draft (veto,
edit, publish) and the post-incident notice. Bad input is a 4xx JSON naming the field."""

from __future__ import annotations

from typing import TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.domain.fieldpath import field_path
from detector.engine import notice_actions
from detector.engine.notice_actions import NoticeRefused
from detector.web.context import SERVICES
from detector.web.responses import bad_request, error, int_param
from responders.notices.cadence import parse_eta
from responders.statuspage.model import IncidentStatus

Text = Field(default="", max_length=4000)
Model = TypeVar("Model", bound=BaseModel)


class UpdateBody(BaseModel):
    """A person's public update: status, their words and an optional revised ETA."""

    model_config = ConfigDict(extra="forbid")
    status: IncidentStatus
    message: str = Text
    eta: str | None = None
    """``14:30`` in the shop's time zone, or ISO 8601."""


class DraftBody(BaseModel):
    """Who acts on the first-notice draft, and (to edit) its new words."""

    model_config = ConfigDict(extra="forbid")
    by: str = Field(default="api", min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    body: str = Text


class PostmortemBody(BaseModel):
    """The post-incident notice: impact, what customers should do, compensation, prevention."""

    model_config = ConfigDict(extra="forbid")
    impact: str = Field(min_length=1, max_length=4000)
    customer_action: str = Text
    compensation: str = Text
    prevention: str = Field(min_length=1, max_length=4000)


async def _body(request: web.Request, model: type[Model]) -> Model:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as err:
        first = err.errors()[0]
        raise bad_request(first["msg"], field_path(first["loc"]) or "body") from None


async def post_update(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/updates``."""
    services = request.app[SERVICES]
    incident_id = int_param(request.match_info["id"], "id")
    body = await _body(request, UpdateBody)
    rules, now = services.rules.current, services.clock.now()
    zone = ZoneInfo(services.settings.status_page_time_zone)
    try:
        eta = None if body.eta is None else parse_eta(body.eta, zone, now)
    except ValueError as err:
        return error(400, f"use HH:MM or an ISO-8601 time in the future ({err})", field="eta")
    try:
        published = await notice_actions.post_update(
            services.pool, rules, zone, incident_id, body.status, body.message, eta, now
        )
    except NoticeRefused as refused:
        return error(refused.status, refused.reason, field=refused.field)
    services.metrics.notice_updates.labels(published.punctuality).inc()
    update = published.update
    return web.json_response(
        {
            "id": incident_id,
            "status": update.status,
            "body": update.body,
            "next_update_at": update.next_update_at.isoformat() if update.next_update_at else None,
            "punctuality": published.punctuality,
        },
        status=201,
    )


async def draft_action(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/notice/{veto|edit|publish}``."""
    services = request.app[SERVICES]
    incident_id = int_param(request.match_info["id"], "id")
    action = request.match_info["action"]
    body = await _body(request, DraftBody)
    rules, now, pool = services.rules.current, services.clock.now(), services.pool
    zone = ZoneInfo(services.settings.status_page_time_zone)
    try:
        if action == "veto":
            await notice_actions.veto(pool, incident_id, body.by, now)
        elif action == "edit":
            if not body.body.strip():
                return error(400, "the notice's new words are required", field="body")
            await notice_actions.edit(pool, rules, incident_id, body.name, body.body, body.by, now)
        else:
            fired = await notice_actions.publish(pool, rules, zone, incident_id, now)
            if fired.first_after is not None:
                services.metrics.notice_first_seconds.observe(fired.first_after.total_seconds())
    except NoticeRefused as refused:
        return error(refused.status, refused.reason, field=refused.field)
    return web.json_response({"id": incident_id, "result": action})


async def post_postmortem(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents/{id}/postmortem``."""
    services = request.app[SERVICES]
    incident_id = int_param(request.match_info["id"], "id")
    body = await _body(request, PostmortemBody)
    try:
        public = await notice_actions.post_postmortem(
            services.pool,
            services.rules.current,
            ZoneInfo(services.settings.status_page_time_zone),
            incident_id,
            body.model_dump(),
            services.clock.now(),
        )
    except NoticeRefused as refused:
        return error(refused.status, refused.reason, field=refused.field)
    return web.json_response(
        {"id": incident_id, "status": public.status, "body": public.postmortem_body}, status=201
    )


async def show_notice(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents/{id}/notice``: the first-notice draft and the public incident."""
    incident_id = int_param(request.match_info["id"], "id")
    return web.json_response(await notice_actions.show(request.app[SERVICES].pool, incident_id))


def routes() -> list[web.RouteDef]:
    """The notices API's routes."""
    return [
        web.get("/api/v1/incidents/{id}/notice", show_notice),
        web.post("/api/v1/incidents/{id}/updates", post_update),
        web.post("/api/v1/incidents/{id}/notice/{action:veto|edit|publish}", draft_action),
        web.post("/api/v1/incidents/{id}/postmortem", post_postmortem),
    ]
