"""The PagerDuty channel against a local stand-in for the Events API v2 that checks every event
against the documented shape and answers as PagerDuty does: 202 for an accepted event, 400
with its reasons for an invalid one, 429 and 5xx when busy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from responders.channels.pagerduty import PagerDutyChannel
from responders.channels.protocol import DeliveryError, FailureReason, deliver
from responders.messages import (
    DigestMessage,
    MessageKind,
    Page,
    PageEvent,
    PageLinks,
    PageMessage,
)

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefghijkl"
ACTIONS = {"trigger", "acknowledge", "resolve"}
SEVERITIES = {"critical", "error", "warning", "info"}
INCIDENT = "https://stormwatch.example/api/v1/incidents/42"
ACK = "https://stormwatch.example/ack/eyJpIjo0Mn0.c2ln"

TRIGGERED = PageMessage(
    Page(
        event=PageEvent.TRIGGERED,
        incident_id=42,
        title="Checkout is failing",
        severity="major",
        summary="payment gateway answers 502",
        state="triggered",
        rule="checkout-failing",
        component="checkout",
        group={"region": "eu", "gateway": "acme"},
        step=1,
        epoch=3,
        impact="about 40 orders a minute fail",
    ),
    PageLinks(incident=INCIDENT, acknowledge=ACK),
)


def string_problem(event: dict[str, Any], field: str, limit: int, *, required: bool) -> list[str]:
    value = event.get(field)
    if value is None and not required:
        return []
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        return [f"'{field}' must be a string of 1 to {limit} characters"]
    return []


def payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    found = string_problem(payload, "summary", 1024, required=True)
    found += string_problem(payload, "source", 255, required=True)
    if payload.get("severity") not in SEVERITIES:
        found.append("'severity' must be one of critical, error, warning, info")
    for optional in ("component", "group", "class"):
        found += string_problem(payload, optional, 1024, required=False)
    if not isinstance(payload.get("custom_details", {}), dict):
        found.append("'custom_details' must be an object")
    return found


def event_problems(event: Any) -> list[str]:
    """What the Events API v2 refuses (the part of its validation a page can meet)."""
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    found = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        found.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        found.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    found += string_problem(event, "dedup_key", 255, required=action != "trigger")
    if action == "trigger":
        found += payload_problems(event.get("payload"))
        for link in event.get("links", []):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                found.append("'links' entries need an 'href'")
    return found


class EventsApi:
    """PagerDuty's ``/v2/enqueue`` on 127.0.0.1; ``answers`` queues replies that stand for
    a busy or failing PagerDuty."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.url = ""
        self._server: TestServer | None = None

    async def start(self) -> EventsApi:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = str(self._server.make_url("/v2/enqueue"))
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _enqueue(self, request: web.Request) -> web.Response:
        try:
            event = json.loads(await request.read())
        except ValueError:
            return _invalid(["Event object is invalid"])
        self.events.append(event)
        if self.answers:
            status = self.answers.pop(0)
            return web.json_response({"status": "throttled", "message": "busy"}, status=status)
        problems = event_problems(event)
        if problems:
            return _invalid(problems)
        accepted = {"status": "success", "message": "Event processed"}
        return web.json_response({**accepted, "dedup_key": event["dedup_key"]}, status=202)


def _invalid(errors: list[str]) -> web.Response:
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    return web.json_response(body, status=400)


@pytest.fixture
async def pagerduty() -> AsyncIterator[EventsApi]:
    api = await EventsApi().start()
    yield api
    await api.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def channel(pagerduty: EventsApi, session: aiohttp.ClientSession) -> PagerDutyChannel:
    return PagerDutyChannel("pd", ROUTING_KEY, session, pagerduty.url)


def update(event: PageEvent) -> PageMessage:
    return PageMessage(
        replace(TRIGGERED.page, event=event, state=event.value),
        PageLinks(incident=INCIDENT, acknowledge=None),
    )


class TestEvents:
    async def test_a_page_triggers_one_alert_per_incident(
        self, pagerduty: EventsApi, channel: PagerDutyChannel
    ) -> None:
        await channel.send(TRIGGERED, "42:3:triggered:1:pd")

        [event] = pagerduty.events
        assert event_problems(event) == []
        assert {key: event[key] for key in ("routing_key", "event_action", "dedup_key")} == {
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "stormwatch-42",
        }
        assert event["payload"] == {
            "summary": "Checkout is failing: payment gateway answers 502",
            "source": "gateway=acme, region=eu",
            "severity": "error",
            "component": "checkout",
            "group": "checkout-failing",
            "class": "checkout-failing",
            "custom_details": {
                "incident": 42,
                "rule": "checkout-failing",
                "group": {"region": "eu", "gateway": "acme"},
                "escalation_step": 1,
                "summary": "payment gateway answers 502",
                "impact": "about 40 orders a minute fail",
            },
        }
        assert event["links"] == [
            {"href": INCIDENT, "text": "Incident #42"},
            {"href": ACK, "text": "Acknowledge"},
        ]

    async def test_an_escalation_triggers_the_same_alert_again(
        self, pagerduty: EventsApi, channel: PagerDutyChannel
    ) -> None:
        # PagerDuty folds a trigger with a known dedup_key into the open alert
        await channel.send(replace(TRIGGERED, page=replace(TRIGGERED.page, step=0)), "42:3:0")
        await channel.send(TRIGGERED, "42:3:triggered:1:pd")

        assert [event["dedup_key"] for event in pagerduty.events] == ["stormwatch-42"] * 2

    @pytest.mark.parametrize(
        ("event", "action"),
        [
            pytest.param(PageEvent.ACKNOWLEDGED, "acknowledge", id="acknowledged"),
            pytest.param(PageEvent.RESOLVED, "resolve", id="resolved"),
        ],
    )
    async def test_updates_carry_only_the_action_and_the_key(
        self, pagerduty: EventsApi, channel: PagerDutyChannel, event: PageEvent, action: str
    ) -> None:
        await channel.send(update(event), f"42:3:{event}:1:pd")

        assert pagerduty.events == [
            {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "stormwatch-42"}
        ]

    @pytest.mark.parametrize(
        ("ours", "theirs"),
        [
            pytest.param("critical", "critical", id="critical"),
            pytest.param("major", "error", id="major"),
            pytest.param("minor", "warning", id="minor"),
            pytest.param("info", "info", id="info"),
        ],
    )
    async def test_severities_in_pagerdutys_words(
        self, pagerduty: EventsApi, channel: PagerDutyChannel, ours: str, theirs: str
    ) -> None:
        await channel.send(replace(TRIGGERED, page=replace(TRIGGERED.page, severity=ours)), "k")

        assert pagerduty.events[0]["payload"]["severity"] == theirs

    async def test_a_long_summary_is_cut_to_1024_characters_and_no_group_names_the_rule(
        self, pagerduty: EventsApi, channel: PagerDutyChannel
    ) -> None:
        long = replace(TRIGGERED.page, summary="x" * 2000, group={}, component=None, impact=None)

        await channel.send(replace(TRIGGERED, page=long), "42:3:triggered:1:pd")

        [event] = pagerduty.events
        assert event_problems(event) == []
        payload = event["payload"]
        assert (len(payload["summary"]), payload["source"]) == (1024, "checkout-failing")
        assert "component" not in payload
        assert "impact" not in payload["custom_details"]

    async def test_digests_are_not_declared_pagerduty_groups_by_itself(
        self, pagerduty: EventsApi, channel: PagerDutyChannel
    ) -> None:
        assert channel.kinds == {MessageKind.PAGE}

        with pytest.raises(DeliveryError) as raised:
            await deliver(channel, DigestMessage((TRIGGERED,)), "digest:alice:1:pd")

        assert raised.value.reason is FailureReason.UNSUPPORTED_KIND
        assert pagerduty.events == []


class TestAnswers:
    @pytest.mark.parametrize(
        ("status", "reason", "retryable"),
        [
            # too many events at a time: PagerDuty asks to retry after a while
            pytest.param(429, FailureReason.RATE_LIMITED, True, id="throttled"),
            pytest.param(500, FailureReason.SERVER_ERROR, True, id="internal error"),
            pytest.param(503, FailureReason.SERVER_ERROR, True, id="unavailable"),
        ],
    )
    async def test_busy_or_failing_is_retried(
        self,
        pagerduty: EventsApi,
        channel: PagerDutyChannel,
        status: int,
        reason: FailureReason,
        retryable: bool,
    ) -> None:
        pagerduty.answers.append(status)

        with pytest.raises(DeliveryError) as raised:
            await channel.send(TRIGGERED, "42:3:triggered:1:pd")

        assert (raised.value.reason, raised.value.retryable) == (reason, retryable)

    async def test_an_invalid_event_is_given_up_without_showing_the_key(
        self, pagerduty: EventsApi, session: aiohttp.ClientSession
    ) -> None:
        # a key PagerDuty refuses (the service checks the length at start; this one slipped by)
        channel = PagerDutyChannel("pd", "not-a-key", session, pagerduty.url)

        with pytest.raises(DeliveryError) as raised:
            await channel.send(TRIGGERED, "42:3:triggered:1:pd")

        assert (raised.value.reason, raised.value.retryable) == (FailureReason.REJECTED, False)
        assert "not-a-key" not in f"{raised.value} {channel!r}"
