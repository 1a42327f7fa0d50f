"""The shop's service with people and schedules, for the on-call API, feed and ack tests.

The rule files learn ``people:`` and ``schedules:`` elsewhere; until then these tests hand the
service a rule set built here: the shop's loaded rules plus four people and two schedules. The
service under test is the shop's (same pool, clock, signing key and engine) answering on its
own 127.0.0.1 port with those rules.

At T0 (Friday 2026-11-27 09:00 UTC, 10:00 in Berlin) ``primary`` (a daily 09:00 Berlin
rotation of alice, bob and carol since 27 October) has bob on call until Saturday 09:00
Berlin (08:00 UTC); ``secondary`` (dan, weekdays 09:00 to 17:00 New York) has nobody until
14:00 UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from detector.ruleset.channel_specs import EmailTarget, PagerDutyTarget, SlackTarget
from detector.ruleset.live import LiveRules
from detector.ruleset.oncall_specs import PersonSpec
from detector.ruleset.rules import RuleSet
from detector.service.settings import Settings
from detector.web import ack_page, calendar_feeds, incidents_api, oncall_api
from detector.web.context import SERVICES, Services
from detector.web.responses import edge
from responders.oncall.model import Layer, Restriction, Schedule
from tests.conftest import Shop

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SATURDAY_HANDOFF = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)

PEOPLE = {
    "alice": PersonSpec(
        id="alice",
        name="Alice Example",
        time_zone="Europe/Berlin",
        contact_methods=(EmailTarget(type="email", to="alice@example.com"),),
    ),
    "bob": PersonSpec(
        id="bob",
        name="Bob Example",
        time_zone="Europe/Berlin",
        contact_methods=(SlackTarget(type="slack", url="https://hooks.example/bob-secret"),),
    ),
    "carol": PersonSpec(
        id="carol",
        name="Carol Example",
        time_zone="Europe/Berlin",
        contact_methods=(EmailTarget(type="email", to="carol@example.com"),),
    ),
    "dan": PersonSpec(
        id="dan",
        name="Dan Example",
        time_zone="America/New_York",
        contact_methods=(PagerDutyTarget(type="pagerduty", routing_key_env="DAN_ROUTING_KEY"),),
    ),
}
PRIMARY = Schedule(
    name="primary",
    time_zone=BERLIN,
    layers=(
        Layer(
            name="days",
            members=("alice", "bob", "carol"),
            shift=DAY,
            handoff=time(9, 0),
            time_zone=BERLIN,
            start=date(2026, 10, 27),
        ),
    ),
)
SECONDARY = Schedule(
    name="secondary",
    time_zone=NEW_YORK,
    layers=(
        Layer(
            name="office-hours",
            members=("dan",),
            shift=7 * DAY,
            handoff=time(9, 0),
            time_zone=NEW_YORK,
            start=date(2026, 11, 2),
            restrictions=(Restriction(frozenset(range(5)), time(9, 0), time(17, 0)),),
        ),
    ),
)


def with_on_call(rules: RuleSet, *schedules: Schedule) -> RuleSet:
    """``rules`` with the people above and ``schedules`` (default: primary and secondary)."""
    chosen = schedules or (PRIMARY, SECONDARY)
    return replace(rules, people=PEOPLE, schedules={s.name: s for s in chosen})


@dataclass
class OnCallService:
    """The shop's service answering with on-call rules: its client and services."""

    client: TestClient
    services: Services

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")


def on_call_app(services: Services) -> web.Application:
    """The on-call, incident and ack routes over ``services``, behind the service's edge."""
    app = web.Application(middlewares=[edge(lambda _request: services.settings.api_token)])
    app[SERVICES] = services
    app.add_routes(
        oncall_api.routes() + calendar_feeds.routes() + incidents_api.routes() + ack_page.routes()
    )
    app.on_response_prepare.append(ack_page.protect)
    return app


@asynccontextmanager
async def serving(
    shop: Shop, rules: RuleSet, settings: Settings | None = None
) -> AsyncIterator[OnCallService]:
    """The shop's services with ``rules`` (and ``settings``) in force, on their own port."""
    live = LiveRules(shop.services.settings.rules_dir, lambda _rules: {}, shop.clock.now, rules)
    services = replace(shop.services, rules=live, settings=settings or shop.services.settings)
    client = TestClient(TestServer(on_call_app(services), host="127.0.0.1"))
    await client.start_server()
    try:
        yield OnCallService(client, services)
    finally:
        await client.close()
