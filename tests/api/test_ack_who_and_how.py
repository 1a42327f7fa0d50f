"""An acknowledgement records who and how: the person a link was sent to (or the name typed
for a shared channel) and the contact method; the API's actor; the command line's ``--as``.
And the ack pages neither leak their token nor let another site frame them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from detector.cli import main
from detector.ruleset.loader import load_ruleset
from detector.web.ack_links import make_token
from detector.web.ack_page import ack_actor
from tests.api.oncall_service import OnCallService, serving, with_on_call
from tests.conftest import Shop, alert
from tests.fakes import T0

PROTECTED = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@pytest.fixture
async def oncall(shop: Shop) -> AsyncIterator[OnCallService]:
    async with serving(shop, with_on_call(shop.services.rules.current)) as service:
        yield service


async def opened(shop: Shop) -> int:
    """Open the pool incident; its id."""
    await shop.post_alerts(alert(cluster="eu-1"))
    await shop.cycle()
    [page] = shop.pager.delivered("triggered")
    return int(page["incident"]["id"])


def link(shop: Shop, incident_id: int, recipient: str | None) -> str:
    expires = T0 + timedelta(hours=1)
    token = make_token(shop.services.signing_key, incident_id, expires, recipient=recipient)
    return f"/ack/{token}"


async def acknowledged(client: TestClient, incident_id: int) -> dict[str, Any]:
    """The ``incident.acknowledged`` entry of the incident's timeline."""
    detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
    [entry] = [e for e in detail["timeline"] if e["kind"] == "incident.acknowledged"]
    assert detail["acknowledged_by"] == entry["detail"]["by"]
    return entry["detail"]  # type: ignore[no-any-return]


class TestLinks:
    async def test_a_link_sent_to_a_persons_email_acks_as_that_person(
        self, shop: Shop, oncall: OnCallService
    ) -> None:
        incident_id = await opened(shop)
        path = link(shop, incident_id, "person:alice:0")

        page = await oncall.client.get(path)
        text = await page.text()
        acked = await oncall.client.post(path, data={"by": "someone else"})

        assert "You acknowledge as <strong>Alice Example</strong>" in text
        assert 'name="by"' not in text
        assert "Escalation stopped" in await acked.text()
        assert await acknowledged(oncall.client, incident_id) == {
            "by": "alice",
            "via": "link:email",
        }

    async def test_the_shared_channels_link_from_the_page_takes_the_typed_name(
        self, shop: Shop
    ) -> None:
        incident_id = await opened(shop)
        [page] = shop.pager.delivered("triggered")
        path = "/ack/" + page["links"]["acknowledge"].rsplit("/", 1)[1]

        shown = await shop.client.get(path)
        await shop.client.post(path, data={"by": "maria"})

        assert 'name="by"' in await shown.text()
        assert await acknowledged(shop.client, incident_id) == {
            "by": "maria",
            "via": "link:webhook",
        }

    async def test_nobody_typed_a_name_so_the_channel_is_named(self, shop: Shop) -> None:
        incident_id = await opened(shop)

        await shop.client.post(link(shop, incident_id, "pager"))

        assert await acknowledged(shop.client, incident_id) == {
            "by": "pager",
            "via": "link:webhook",
        }

    @pytest.mark.parametrize(
        ("recipient", "typed", "expected"),
        [
            ("person:alice:0", "", ("alice", "link:email")),
            ("person:bob:0", "Robert", ("bob", "link:slack")),
            ("person:dan:0", "", ("dan", "link:pagerduty")),
            ("person:gone:0", "", ("gone", "link")),  # the person left the files since
            ("pager", "maria", ("maria", "link:webhook")),
            ("pager", "", ("pager", "link:webhook")),
            (None, "maria", ("maria", "link")),  # links from before recipients were named
            (None, "", ("ack link", "link")),
        ],
        ids=[
            "email",
            "slack-typed-name-ignored",
            "pagerduty",
            "removed-person",
            "channel-typed",
            "channel-untyped",
            "old-link-typed",
            "old-link-untyped",
        ],
    )
    def test_who_and_how_by_recipient(
        self, rules_dir: Path, recipient: str | None, typed: str, expected: tuple[str, str]
    ) -> None:
        endpoints = with_on_call(load_ruleset(rules_dir)).every_channel()
        assert ack_actor(recipient, typed, endpoints) == expected


class TestApiAndCommandLine:
    @pytest.mark.parametrize(
        ("body", "headers", "by"),
        [
            ({"by": "maria"}, {"X-Stormwatch-Actor": "chatops"}, "maria"),
            ({}, {"X-Stormwatch-Actor": "chatops"}, "chatops"),
            (None, {}, "api"),
        ],
        ids=["body-wins", "header", "neither"],
    )
    async def test_api_acks_record_the_actor_and_api(
        self,
        shop: Shop,
        body: dict[str, str] | None,
        headers: dict[str, str],
        by: str,
    ) -> None:
        incident_id = await opened(shop)

        response = await shop.client.post(
            f"/api/v1/incidents/{incident_id}/ack", json=body, headers=headers
        )

        assert response.status == 200
        assert await acknowledged(shop.client, incident_id) == {"by": by, "via": "api"}

    async def test_cli_acks_record_as_and_cli(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        incident_id = await opened(shop)
        url = str(shop.client.make_url("")).rstrip("/")
        capsys.readouterr()  # the service's log lines so far

        code = await asyncio.to_thread(
            main, ["ack", str(incident_id), "--as", "maria", "--url", url]
        )
        out = capsys.readouterr().out

        assert (code, out.strip().splitlines()[-1]) == (0, f"incident {incident_id}: acknowledged")
        assert await acknowledged(shop.client, incident_id) == {"by": "maria", "via": "cli"}
        shown = await asyncio.to_thread(main, ["incidents", "show", str(incident_id), "--url", url])
        assert shown == 0
        assert '"by": "maria", "via": "cli"' in capsys.readouterr().out

    async def test_only_api_and_cli_are_accepted_as_via(self, shop: Shop) -> None:
        incident_id = await opened(shop)
        response = await shop.client.post(
            f"/api/v1/incidents/{incident_id}/ack", json={"via": "link:email"}
        )
        assert response.status == 400
        assert (await response.json())["field"] == "via"


class TestAckPagesAreProtected:
    async def _answers(self, shop: Shop) -> dict[str, ClientResponse]:
        incident_id = await opened(shop)
        good = link(shop, incident_id, "pager")
        expired = "/ack/" + make_token(shop.services.signing_key, incident_id, T0, None, "pager")
        return {
            "GET": await shop.client.get(good),
            "POST": await shop.client.post(good),
            "POST-again": await shop.client.post(good),
            "forged": await shop.client.get(link(shop, incident_id, "pager") + "x"),
            "expired": await shop.client.post(expired),
            "no-such-incident": await shop.client.get(link(shop, 999, "pager")),
            "wrong-method": await shop.client.put(good),
            "no-token": await shop.client.get("/ack/"),
        }

    async def test_every_answer_carries_the_headers(self, shop: Shop) -> None:
        answers = await self._answers(shop)

        statuses = {name: response.status for name, response in answers.items()}
        assert statuses == {
            "GET": 200,
            "POST": 200,
            "POST-again": 200,
            "forged": 400,
            "expired": 410,
            "no-such-incident": 404,
            "wrong-method": 405,
            "no-token": 404,
        }
        for name, response in answers.items():
            for header, value in PROTECTED.items():
                assert response.headers.get(header) == value, (name, header)
            policy = response.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in policy, name
            assert "default-src 'none'" in policy, name

    async def test_the_policy_lets_the_page_style_itself_and_post_its_form(
        self, shop: Shop
    ) -> None:
        incident_id = await opened(shop)
        response = await shop.client.get(link(shop, incident_id, "pager"))
        policy = dict(
            part.strip().split(" ", 1)
            for part in response.headers["Content-Security-Policy"].split(";")
        )
        assert policy["form-action"] == "'self'"
        assert policy["style-src"].startswith("'sha256-")
        assert "<script" not in await response.text()

    async def test_other_paths_are_left_alone(self, shop: Shop) -> None:
        response = await shop.client.get("/healthz")
        assert "X-Frame-Options" not in response.headers
