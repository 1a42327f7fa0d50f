"""The webhook channel's request is a public contract: these are the exact bytes a receiver gets,
serialisation order and spacing included, so a change to them shows here before it reaches one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from responders.channels.webhook import WebhookChannel
from responders.messages import DigestMessage, Page, PageEvent, PageLinks, PageMessage
from tests.fakes import PageReceiver

INCIDENT = "https://stormwatch.example/api/v1/incidents/7"
ACK = "https://stormwatch.example/ack/eyJpIjo3fQ.c2ln"

ESCALATED = PageMessage(
    Page(
        event=PageEvent.TRIGGERED,
        incident_id=7,
        title="Verbindungspool erschöpft auf eu-1",
        severity="critical",
        summary='no idle "server" connection',
        state="triggered",
        rule="pool-exhausted",
        component="checkout",
        group={"cluster": "eu-1", "database": "shop"},
        step=1,
        epoch=2,
    ),
    PageLinks(incident=INCIDENT, acknowledge=ACK),
)
ESCALATED_BODY = (
    b'{"version": "1", "event": "triggered", "incident": {"id": 7,'
    b' "title": "Verbindungspool ersch\\u00f6pft auf eu-1", "severity": "critical",'
    b' "summary": "no idle \\"server\\" connection", "state": "triggered",'
    b' "rule": "pool-exhausted", "component": "checkout",'
    b' "group": {"cluster": "eu-1", "database": "shop"}}, "escalation_step": 1,'
    b' "links": {"incident": "https://stormwatch.example/api/v1/incidents/7",'
    b' "acknowledge": "https://stormwatch.example/ack/eyJpIjo3fQ.c2ln"}}'
)

UNLINKED = replace(ESCALATED, links=PageLinks(incident=INCIDENT, acknowledge=None))
UNLINKED_BODY = (
    b'{"version": "1", "event": "triggered", "incident": {"id": 7,'
    b' "title": "Verbindungspool ersch\\u00f6pft auf eu-1", "severity": "critical",'
    b' "summary": "no idle \\"server\\" connection", "state": "triggered",'
    b' "rule": "pool-exhausted", "component": "checkout",'
    b' "group": {"cluster": "eu-1", "database": "shop"}}, "escalation_step": 1,'
    b' "links": {"incident": "https://stormwatch.example/api/v1/incidents/7"}}'
)

ACKNOWLEDGED = PageMessage(
    Page(
        event=PageEvent.ACKNOWLEDGED,
        incident_id=7,
        title="Checkout errors",
        severity="major",
        summary="",
        state="acknowledged",
        rule="checkout-errors",
        component=None,
        group={},
        step=1,
        epoch=2,
    ),
    PageLinks(incident=INCIDENT, acknowledge=None),
)
ACKNOWLEDGED_BODY = (
    b'{"version": "1", "event": "acknowledged", "incident": {"id": 7,'
    b' "title": "Checkout errors", "severity": "major", "summary": "",'
    b' "state": "acknowledged", "rule": "checkout-errors", "component": null, "group": {}},'
    b' "escalation_step": 1,'
    b' "links": {"incident": "https://stormwatch.example/api/v1/incidents/7"}}'
)

ESTIMATED = replace(ESCALATED, page=replace(ESCALATED.page, impact="about 40 orders a minute fail"))
ESTIMATED_BODY = ESCALATED_BODY.replace(
    b' "database": "shop"}}', b' "database": "shop"}, "impact": "about 40 orders a minute fail"}'
)

DIGEST = DigestMessage((ESCALATED, UNLINKED))
DIGEST_BODY = (
    b'{"version": "1", "event": "digest", "pages": ['
    + ESCALATED_BODY
    + b", "
    + UNLINKED_BODY
    + b"]}"
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class TestWebhookBody:
    @pytest.mark.parametrize(
        ("message", "body"),
        [
            # an escalation page asks someone to act: it carries the acknowledge link
            pytest.param(ESCALATED, ESCALATED_BODY, id="escalation page with acknowledge link"),
            # the same page when no acknowledge link could be made for it
            pytest.param(UNLINKED, UNLINKED_BODY, id="escalation page without acknowledge link"),
            # an update on an earlier page has nothing left to acknowledge, and no component
            pytest.param(ACKNOWLEDGED, ACKNOWLEDGED_BODY, id="update without acknowledge link"),
            # a business impact estimate joins the incident object, only when there is one
            pytest.param(ESTIMATED, ESTIMATED_BODY, id="page with impact"),
            # pages bundled during a storm: each page's object as it would have gone alone
            pytest.param(DIGEST, DIGEST_BODY, id="digest of two pages"),
        ],
    )
    async def test_exact_bytes_on_the_wire(
        self,
        message: PageMessage | DigestMessage,
        body: bytes,
        pager: PageReceiver,
        session: aiohttp.ClientSession,
    ) -> None:
        channel = WebhookChannel("pager", pager.url, session, {"X-Team": "shop"})

        await channel.send(message, "7:2:triggered:1:pager")

        assert pager.bodies == [body]
        [headers] = pager.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["Idempotency-Key"] == "7:2:triggered:1:pager"
        assert headers["X-Team"] == "shop"
