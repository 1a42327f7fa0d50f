"""On call under ``/api/v1`` (bearer ``API_TOKEN`` when configured): who is on call now and next,
a schedule's shifts, and overrides made at 3 a.m. without editing a rule file.

Stored overrides win over the files' (the resolver lays them on last). A new one may not overlap
a live stored override of its schedule; the check and the insert share one serializable
transaction, so two people taking the same night at the same moment cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from detector.domain.fieldpath import field_path
from detector.ruleset.rules import RuleSet
from detector.store import oncall_overrides
from detector.store.connection import Pool, StatementError
from detector.web import calendar_feeds
from detector.web.context import SERVICES, Services
from detector.web.responses import actor, bad_request, error, int_param
from responders.oncall.model import Override, Schedule, Shift
from responders.oncall.resolver import HORIZON, final_shifts, next_handoffs

log = structlog.get_logger(__name__)
Model = TypeVar("Model", bound=BaseModel)

NEXT_HANDOFFS = 3
DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=90)
_SERIALIZATION_FAILURE = "40001"
_ATTEMPTS = 3


class OverrideBody(BaseModel):
    """``POST .../overrides``: who covers, until when (from now unless ``start``), made by whom."""

    model_config = ConfigDict(extra="forbid")
    person: str = Field(min_length=1, max_length=100)
    start: AwareDatetime | None = None
    end: AwareDatetime
    created_by: str | None = Field(default=None, min_length=1, max_length=200)


class DeleteBody(BaseModel):
    """Optional body of ``DELETE .../overrides/{id}``: who deletes it."""

    model_config = ConfigDict(extra="forbid")
    by: str | None = Field(default=None, min_length=1, max_length=200)


def person_json(rules: RuleSet, person: str) -> dict[str, str]:
    """A person as the API shows them: id and display name (the id when the files lost them)."""
    spec = rules.people.get(person)
    return {"id": person, "name": spec.name if spec else person}


def shift_json(rules: RuleSet, shift: Shift) -> dict[str, Any]:
    """One shift: who, from when, until when."""
    return {
        "person": person_json(rules, shift.person),
        "start": shift.start.isoformat(),
        "end": shift.end.isoformat(),
    }


def override_json(rules: RuleSet, schedule: str, override: Override) -> dict[str, Any]:
    """A stored override as made: id, person, start, end and who made it."""
    return {
        "id": override.id,
        "schedule": schedule,
        "person": person_json(rules, override.person),
        "start": override.start.isoformat(),
        "end": override.end.isoformat(),
        "created_by": override.created_by,
    }


def schedule_view(
    rules: RuleSet,
    schedule: Schedule,
    now: datetime,
    overrides: Sequence[Override],
    calendar: str,
) -> dict[str, Any]:
    """Who is on call at ``now`` (None: nobody), until when, and the next handoffs."""
    upcoming = next_handoffs(schedule, now, NEXT_HANDOFFS + 1, overrides)
    current = upcoming[0] if upcoming and upcoming[0].start <= now else None
    later = [shift for shift in upcoming if shift is not current][:NEXT_HANDOFFS]
    return {
        "name": schedule.name,
        "time_zone": schedule.time_zone.key,
        "on_call": None if current is None else person_json(rules, current.person),
        "until": None if current is None else current.end.isoformat(),
        "next": [shift_json(rules, shift) for shift in later],
        "calendar": calendar,
    }


async def stored(
    pool: Pool, names: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[Override]]:
    """The live stored overrides of ``names`` overlapping [start, end), by schedule."""
    async with pool.acquire() as connection:
        return await oncall_overrides.overlapping(connection, names, start, end)


async def who_is_on_call(request: web.Request) -> web.Response:
    """``GET /api/v1/oncall[?schedule=NAME]``: every schedule's on-call now and next handoffs,
    with the signed calendar feeds of the schedules and of the people."""
    services = request.app[SERVICES]
    rules, now = services.rules.current, services.clock.now()
    wanted = request.query.get("schedule")
    if wanted is not None and wanted not in rules.schedules:
        return error(404, "no such schedule", field="schedule")
    names = [wanted] if wanted is not None else sorted(rules.schedules)
    found = await stored(services.pool, names, now - HORIZON, now + HORIZON)
    feeds = calendar_feeds.FeedLinks(services.settings.base_url, services.signing_key)
    return web.json_response(
        {
            "at": now.isoformat(),
            "schedules": [
                schedule_view(
                    rules, rules.schedules[name], now, found.get(name, []), feeds.schedule(name)
                )
                for name in names
            ],
            "people": [
                person_json(rules, person) | {"calendar": feeds.person(person)}
                for person in sorted(rules.people)
            ],
        }
    )


async def show_schedule(request: web.Request) -> web.Response:
    """``GET /api/v1/schedules/{name}``: the same view for one schedule, with its time zone."""
    services, schedule = _schedule(request)
    now = services.clock.now()
    found = await stored(services.pool, [schedule.name], now - HORIZON, now + HORIZON)
    feeds = calendar_feeds.FeedLinks(services.settings.base_url, services.signing_key)
    view = schedule_view(
        services.rules.current,
        schedule,
        now,
        found.get(schedule.name, []),
        feeds.schedule(schedule.name),
    )
    return web.json_response(view)


async def list_shifts(request: web.Request) -> web.Response:
    """``GET /api/v1/schedules/{name}/shifts?from=&to=``: the final shifts, clipped to the
    window (default: now to seven days on; at most 90 days)."""
    services, schedule = _schedule(request)
    start = _time_param(request, "from", schedule, services.clock.now())
    end = _time_param(request, "to", schedule, start + DEFAULT_SPAN)
    if end <= start:
        return error(400, "must be after from", field="to")
    if end - start > MAX_SPAN:
        return error(400, "the window may span at most 90 days", field="to")
    found = await stored(services.pool, [schedule.name], start, end)
    shifts = final_shifts(schedule, start, end, found.get(schedule.name, []))
    rules = services.rules.current
    return web.json_response(
        {
            "schedule": schedule.name,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "shifts": [shift_json(rules, shift) for shift in shifts],
        }
    )


async def list_overrides(request: web.Request) -> web.Response:
    """``GET /api/v1/schedules/{name}/overrides``: the live stored ones not yet ended."""
    services, schedule = _schedule(request)
    async with services.pool.acquire() as connection:
        found = await oncall_overrides.current_and_future(
            connection, schedule.name, services.clock.now()
        )
    rules = services.rules.current
    return web.json_response(
        {
            "schedule": schedule.name,
            "overrides": [override_json(rules, schedule.name, made) for made in found],
        }
    )


async def add_override(request: web.Request) -> web.Response:
    """``POST /api/v1/schedules/{name}/overrides``: 201 with the override; 400 naming the
    field; 409 when it overlaps a live stored override of the schedule."""
    services, schedule = _schedule(request)
    body = await _body(request, OverrideBody)
    rules, now = services.rules.current, services.clock.now()
    start = body.start or now
    if body.person not in rules.people:
        return error(400, "no such person in the on-call files", field="person")
    if body.end <= start:
        return error(400, "must be after start", field="end")
    if body.end <= now:
        return error(400, "has passed", field="end")
    wanted = Override(body.person, start, body.end, actor(request, body.created_by))
    made = await _store_override(services.pool, schedule.name, wanted, now)
    if isinstance(made, list):
        clashes = [override_json(rules, schedule.name, other) for other in made]
        return error(
            409, "overlaps a stored override of this schedule", field="start", conflicts=clashes
        )
    log.info(
        "oncall.override_added",
        schedule=schedule.name,
        id=made.id,
        person=made.person,
        by=made.created_by,
    )
    return web.json_response(override_json(rules, schedule.name, made), status=201)


async def delete_override(request: web.Request) -> web.Response:
    """``DELETE /api/v1/schedules/{name}/overrides/{id}``: it stops counting (history kept)."""
    services, schedule = _schedule(request)
    override_id = int_param(request.match_info["id"], "id")
    body = await _body(request, DeleteBody)
    by = actor(request, body.by)
    async with services.pool.acquire() as connection:
        deleted = await oncall_overrides.delete(
            connection, schedule.name, override_id, by, services.clock.now()
        )
    if not deleted:
        return error(404, "no such override on this schedule", field="id")
    log.info("oncall.override_deleted", schedule=schedule.name, id=override_id, by=by)
    return web.json_response({"id": override_id, "schedule": schedule.name, "deleted_by": by})


async def _store_override(
    pool: Pool, schedule: str, wanted: Override, now: datetime
) -> Override | list[Override]:
    """Store ``wanted`` unless live stored overrides of ``schedule`` overlap it (then those);
    a serialization failure (a concurrent override) is tried again, and then sees the other."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with (
                pool.acquire() as connection,
                connection.transaction(isolation="serializable"),
            ):
                found = await oncall_overrides.overlapping(
                    connection, [schedule], wanted.start, wanted.end
                )
                if found.get(schedule):
                    return found[schedule]
                return await oncall_overrides.add(
                    connection,
                    schedule,
                    wanted.person,
                    wanted.start,
                    wanted.end,
                    wanted.created_by,
                    now,
                )
        except StatementError as err:
            if getattr(err, "sqlstate", None) != _SERIALIZATION_FAILURE or attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _schedule(request: web.Request) -> tuple[Services, Schedule]:
    """The services and the schedule the path names; a 404 naming ``schedule`` otherwise."""
    services = request.app[SERVICES]
    schedule = services.rules.current.schedules.get(request.match_info["name"])
    if schedule is None:
        raise web.HTTPNotFound(
            text='{"error": "no such schedule", "field": "schedule"}',
            content_type="application/json",
        )
    return services, schedule


def _time_param(
    request: web.Request, field: str, schedule: Schedule, default: datetime
) -> datetime:
    """An ISO 8601 query parameter, in UTC (without an offset: the schedule's local time)."""
    text = request.query.get(field)
    if text is None:
        return default
    try:
        moment = datetime.fromisoformat(_plus_restored(text.strip()))
    except ValueError:
        raise bad_request("not an ISO 8601 time (e.g. 2027-03-01T09:00:00+01:00)", field) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=schedule.time_zone)).astimezone(UTC)


def _plus_restored(text: str) -> str:
    """``+01:00`` sent unencoded arrives as `` 01:00`` (a ``+`` in a query is a space)."""
    head, space, offset = text.rpartition(" ")
    if space and "T" in head and len(offset) == 5 and offset[2] == ":":
        return f"{head}+{offset}"
    return text


async def _body(request: web.Request, model: type[Model]) -> Model:
    raw = await request.read()
    try:
        return model.model_validate_json(raw if raw.strip() else b"{}")
    except ValidationError as err:
        first = err.errors()[0]
        raise bad_request(first["msg"], field_path(first["loc"]) or "body") from None


def routes() -> list[web.RouteDef]:
    """The on-call API's routes."""
    base = "/api/v1/schedules/{name}"
    return [
        web.get("/api/v1/oncall", who_is_on_call),
        web.get(base, show_schedule),
        web.get(f"{base}/shifts", list_shifts),
        web.get(f"{base}/overrides", list_overrides),
        web.post(f"{base}/overrides", add_override),
        web.delete(base + "/overrides/{id}", delete_override),
    ]
