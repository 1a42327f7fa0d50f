"""iCalendar feeds of on-call shifts for calendar apps: one per schedule, one per person.

Calendar apps cannot send a bearer token, so a feed's URL carries its credential: ``sig`` is an
HMAC-SHA256 of the path under a key derived from the service's signing key (derived, so a feed
signature can never pass for an ack link's or the other way round). It does not expire, since
apps poll a subscribed URL for months; changing ``STORMWATCH_SIGNING_KEY`` revokes every feed URL
(and every ack link) at once. A feed holds display names and shift times, nothing else.

A feed covers four weeks back to twelve ahead. Shifts already running at its start keep their
real start, so an event's UID (schedule, person, start) stays the same from one poll to the next.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from urllib.parse import quote

from aiohttp import web

from detector.ruleset.rules import RuleSet
from detector.store import oncall_overrides
from detector.web.context import SERVICES, Services
from detector.web.responses import error
from responders.oncall.calendar import shifts_calendar
from responders.oncall.model import Override, Schedule, Shift
from responders.oncall.resolver import HORIZON, final_shifts

BACK = timedelta(weeks=4)
AHEAD = timedelta(weeks=12)
_PURPOSE = b"stormwatch calendar feeds"
_HEADERS = {
    "Cache-Control": "private, max-age=300",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def feed_signature(key: bytes, path: str) -> str:
    """The ``sig`` of a feed path (as sent: percent-encoded, without the query)."""
    feed_key = hmac.new(key, _PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(feed_key, path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def schedule_path(name: str) -> str:
    """The path of a schedule's feed."""
    return f"/calendar/schedules/{quote(name, safe='')}.ics"


def person_path(person: str) -> str:
    """The path of a person's feed (their shifts in every schedule)."""
    return f"/calendar/people/{quote(person, safe='')}.ics"


class FeedLinks:
    """Signed feed URLs under the service's public base URL."""

    def __init__(self, base_url: str, key: bytes) -> None:
        self._base = base_url.rstrip("/")
        self._key = key

    def schedule(self, name: str) -> str:
        """The signed URL of ``name``'s feed."""
        return self._signed(schedule_path(name))

    def person(self, person: str) -> str:
        """The signed URL of ``person``'s feed."""
        return self._signed(person_path(person))

    def _signed(self, path: str) -> str:
        return f"{self._base}{path}?sig={feed_signature(self._key, path)}"


def feed_shifts(schedule: Schedule, now: datetime, overrides: list[Override]) -> list[Shift]:
    """The schedule's shifts a feed shows: those overlapping [now - BACK, now + AHEAD), the
    first with its real start (looked for up to the resolver's horizon before)."""
    shifts = final_shifts(schedule, now - BACK - HORIZON, now + AHEAD, overrides)
    return [shift for shift in shifts if shift.end > now - BACK]


async def schedule_feed(request: web.Request) -> web.StreamResponse:
    """``GET /calendar/schedules/{name}.ics?sig=...``."""
    services = _verified(request)
    rules, now = services.rules.current, services.clock.now()
    name = request.match_info["name"]
    schedule = rules.schedules.get(name)
    if schedule is None:
        return error(404, "no such schedule", field="name")
    stored = await _stored(services, [name], now)
    shifts = feed_shifts(schedule, now, stored.get(name, []))
    return _calendar(shifts_calendar(f"On call: {name}", shifts, _names(rules), now))


async def person_feed(request: web.Request) -> web.StreamResponse:
    """``GET /calendar/people/{id}.ics?sig=...``: the person's shifts in every schedule."""
    services = _verified(request)
    rules, now = services.rules.current, services.clock.now()
    person = rules.people.get(request.match_info["id"])
    if person is None:
        return error(404, "no such person", field="id")
    stored = await _stored(services, list(rules.schedules), now)
    shifts = [
        shift
        for name, schedule in rules.schedules.items()
        for shift in feed_shifts(schedule, now, stored.get(name, []))
        if shift.person == person.id
    ]
    return _calendar(shifts_calendar(f"On call: {person.name}", shifts, _names(rules), now))


def _verified(request: web.Request) -> Services:
    """The services, once the request's signature matches its path; a 403 otherwise."""
    services = request.app[SERVICES]
    expected = feed_signature(services.signing_key, request.rel_url.raw_path)
    presented = request.query.get("sig", "")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise web.HTTPForbidden(
            text='{"error": "missing or wrong signature", "field": "sig"}',
            content_type="application/json",
        )
    return services


async def _stored(services: Services, names: list[str], now: datetime) -> dict[str, list[Override]]:
    async with services.pool.acquire() as connection:
        return await oncall_overrides.overlapping(
            connection, names, now - BACK - HORIZON, now + AHEAD
        )


def _names(rules: RuleSet) -> dict[str, str]:
    return {person.id: person.name for person in rules.people.values()}


def _calendar(body: bytes) -> web.Response:
    response = web.Response(body=body, headers=_HEADERS)
    response.content_type = "text/calendar"
    response.charset = "utf-8"
    return response


def routes() -> list[web.RouteDef]:
    """The feed routes (open: each URL carries its own signature)."""
    return [
        web.get("/calendar/schedules/{name}.ics", schedule_feed),
        web.get("/calendar/people/{id}.ics", person_feed),
    ]
