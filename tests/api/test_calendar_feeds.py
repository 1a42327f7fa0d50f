"""Calendar feeds: a calendar app subscribes to the signed URL the API gives, polls it without a
token, and reads shifts with display names and times, nothing more; anything unsigned is a 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from pydantic import SecretStr

from tests.api.oncall_service import SATURDAY_HANDOFF, OnCallService, serving, with_on_call
from tests.conftest import Shop
from tests.fakes import T0

DAY = timedelta(days=1)


@pytest.fixture
async def oncall(shop: Shop) -> AsyncIterator[OnCallService]:
    async with serving(shop, with_on_call(shop.services.rules.current)) as service:
        yield service


async def feed_urls(service: OnCallService) -> dict[str, str]:
    """Each feed's path and query as the API hands them out, by schedule or person id."""
    answer = await (await service.client.get("/api/v1/oncall")).json()
    rows = answer["schedules"] + answer["people"]
    return {row.get("name") if "time_zone" in row else row["id"]: _local(row) for row in rows}


def _local(row: dict[str, Any]) -> str:
    url = urlsplit(row["calendar"])
    return f"{url.path}?{url.query}"


def events(body: bytes) -> list[tuple[str, datetime, datetime]]:
    calendar = Calendar.from_ical(body)
    return [
        (str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND"))
        for e in calendar.walk("VEVENT")
    ]


class TestSignedFeeds:
    async def test_a_schedules_feed_covers_four_weeks_back_to_twelve_ahead(
        self, oncall: OnCallService
    ) -> None:
        response = await oncall.client.get((await feed_urls(oncall))["primary"])

        assert response.status == 200
        assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
        assert response.headers["Cache-Control"] == "private, max-age=300"
        body = await response.read()
        calendar = Calendar.from_ical(body)
        assert str(calendar["X-WR-CALNAME"]) == "On call: primary"
        shifts = events(body)
        # the shift running four weeks back keeps its real start: 09:00 Berlin, 08:00 UTC
        first_start = shifts[0][1]
        assert first_start <= T0 - 28 * DAY < shifts[0][2]
        assert (first_start.hour, first_start.minute) == (8, 0)
        assert shifts[-1][2] == T0 + 12 * 7 * DAY
        assert all(start.tzinfo is not None for _, start, _ in shifts)
        current = next(s for s in shifts if s[1] <= T0 < s[2])
        assert current == (
            "On call: Bob Example (primary)",
            SATURDAY_HANDOFF - DAY,
            SATURDAY_HANDOFF,
        )

    async def test_a_persons_feed_has_their_shifts_in_every_schedule(
        self, oncall: OnCallService
    ) -> None:
        response = await oncall.client.get((await feed_urls(oncall))["dan"])

        assert response.status == 200
        shifts = events(await response.read())
        assert shifts
        assert {summary for summary, _, _ in shifts} == {"On call: Dan Example (secondary)"}
        friday = next(s for s in shifts if s[1] > T0)
        assert friday[1:] == (T0 + timedelta(hours=5), T0 + timedelta(hours=13))

    async def test_a_stored_override_shows_in_the_feeds(self, oncall: OnCallService) -> None:
        made = await oncall.client.post(
            "/api/v1/schedules/primary/overrides",
            json={"person": "dan", "end": (T0 + 2 * DAY).isoformat()},
        )
        assert made.status == 201
        urls = await feed_urls(oncall)

        dans = events(await (await oncall.client.get(urls["dan"])).read())
        bobs = events(await (await oncall.client.get(urls["bob"])).read())

        assert ("On call: Dan Example (primary)", T0, T0 + 2 * DAY) in dans
        assert not any(start <= T0 < end for _, start, end in bobs)

    async def test_nothing_but_names_and_times(self, oncall: OnCallService) -> None:
        urls = await feed_urls(oncall)
        bodies = [await (await oncall.client.get(url)).read() for url in urls.values()]

        for body in bodies:
            text = body.decode()
            for secret in ("example.com", "hooks.example", "DAN_ROUTING_KEY", "sig=", "alice"):
                assert secret not in text
            fields = {name for e in Calendar.from_ical(body).walk("VEVENT") for name in e}
            assert fields <= {"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "TRANSP"}

    async def test_uids_stay_the_same_from_one_poll_to_the_next(
        self, shop: Shop, oncall: OnCallService
    ) -> None:
        url = (await feed_urls(oncall))["primary"]
        before = Calendar.from_ical(await (await oncall.client.get(url)).read())
        shop.clock.advance(timedelta(hours=5))
        after = Calendar.from_ical(await (await oncall.client.get(url)).read())

        uids = [{str(e["UID"]) for e in c.walk("VEVENT")} for c in (before, after)]
        assert uids[0] == uids[1]


class TestRefused:
    @pytest.mark.parametrize(
        "tamper",
        [
            lambda url: url.split("?")[0],
            lambda url: url + "x",
            lambda url: url.replace("primary", "secondary"),
            lambda url: url.replace("/schedules/primary", "/people/alice"),
        ],
        ids=["missing", "wrong", "another-schedule", "another-kind-of-feed"],
    )
    async def test_an_unsigned_or_wrongly_signed_feed_is_a_403(
        self, oncall: OnCallService, tamper: Any
    ) -> None:
        url = (await feed_urls(oncall))["primary"]

        response = await oncall.client.get(tamper(url))

        assert response.status == 403
        assert await response.json() == {"error": "missing or wrong signature", "field": "sig"}

    async def test_an_ack_links_key_does_not_sign_feeds(self, oncall: OnCallService) -> None:
        """A feed signature is made under a key derived for feeds alone."""
        path = "/calendar/schedules/primary.ics"
        plain = hmac.new(oncall.services.signing_key, path.encode(), hashlib.sha256).digest()
        sig = base64.urlsafe_b64encode(plain).rstrip(b"=").decode()

        response = await oncall.client.get(f"{path}?sig={sig}")

        assert response.status == 403

    async def test_a_feed_needs_no_bearer_token_but_the_api_does(self, shop: Shop) -> None:
        settings = shop.services.settings.model_copy(update={"api_token": SecretStr("t0ken")})
        rules = with_on_call(shop.services.rules.current)
        async with serving(shop, rules, settings) as oncall:
            unauthorised = await oncall.client.get("/api/v1/oncall")
            answer = await oncall.client.get(
                "/api/v1/oncall", headers={"Authorization": "Bearer t0ken"}
            )
            url = _local((await answer.json())["schedules"][0])
            feed = await oncall.client.get(url)

        assert unauthorised.status == 401
        assert feed.status == 200

    async def test_a_schedule_removed_since_is_a_404(self, shop: Shop) -> None:
        rules = with_on_call(shop.services.rules.current)
        async with serving(shop, rules) as oncall:
            url = (await feed_urls(oncall))["secondary"]
        async with serving(shop, replace(rules, schedules={})) as later:
            response = await later.client.get(url)
        assert response.status == 404
