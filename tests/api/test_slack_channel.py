"""The Slack channel against a local stand-in for an incoming webhook that checks every request
against Block Kit's documented limits and answers as Slack does: ``ok``, or the status and
error word Slack uses, which decide between giving up and retrying."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.slack import SlackChannel
from responders.messages import (
    DigestMessage,
    NoticeReminder,
    NoticeReminderMessage,
    Page,
    PageEvent,
    PageLinks,
    PageMessage,
)

TOKEN = "xoxwh3bS3cr3tPathP4rt"
KNOWN_BLOCKS = {"header", "section", "actions", "context", "divider", "image"}
INCIDENT = "https://stormwatch.example/api/v1/incidents/7"
ACK = "https://stormwatch.example/ack/eyJpIjo3fQ.c2ln"

TRIGGERED = PageMessage(
    Page(
        event=PageEvent.TRIGGERED,
        incident_id=7,
        title="Checkout is failing",
        severity="critical",
        summary="payment gateway answers 502 for <1% & rising",
        state="triggered",
        rule="checkout-failing",
        component="checkout",
        group={"region": "eu"},
        step=1,
        epoch=2,
        impact="about 40 orders a minute fail",
        recipient="alice",
    ),
    PageLinks(incident=INCIDENT, acknowledge=ACK),
)


def page(incident_id: int, **changes: Any) -> PageMessage:
    """TRIGGERED for another incident, with its own links."""
    links = PageLinks(
        incident=f"https://stormwatch.example/api/v1/incidents/{incident_id}",
        acknowledge=f"https://stormwatch.example/ack/{incident_id}.sig",
    )
    return PageMessage(replace(TRIGGERED.page, incident_id=incident_id, **changes), links)


def text_problems(where: str, text: Any, limit: int, kinds: set[str]) -> list[str]:
    if not isinstance(text, dict) or text.get("type") not in kinds:
        return [f"{where}: a text object of type {sorted(kinds)}"]
    value = text.get("text")
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        return [f"{where}: text of 1 to {limit} characters"]
    return []


def button_problems(where: str, button: Any) -> list[str]:
    if not isinstance(button, dict) or button.get("type") != "button":
        return [f"{where}: a button"]
    found = text_problems(f"{where}.text", button.get("text"), 75, {"plain_text"})
    url = button.get("url")
    if not isinstance(url, str) or not url.startswith("http") or len(url) > 3000:
        found.append(f"{where}.url: an http(s) URL of at most 3000 characters")
    if len(str(button.get("action_id", ""))) > 255:
        found.append(f"{where}.action_id: at most 255 characters")
    return found


def block_problems(where: str, block: Any) -> list[str]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in KNOWN_BLOCKS:
        return [f"{where}: unknown block type {kind!r}"]
    if kind == "header":
        return text_problems(f"{where}.text", block.get("text"), 150, {"plain_text"})
    if kind == "section":
        found = []
        if "text" in block or "fields" not in block:
            found += text_problems(
                f"{where}.text", block.get("text"), 3000, {"mrkdwn", "plain_text"}
            )
        fields = block.get("fields", [])
        if len(fields) > 10:
            found.append(f"{where}.fields: at most 10")
        for i, field in enumerate(fields):
            found += text_problems(f"{where}.fields[{i}]", field, 2000, {"mrkdwn", "plain_text"})
        if "accessory" in block:
            found += button_problems(f"{where}.accessory", block["accessory"])
        return found
    if kind == "actions":
        elements = block.get("elements", [])
        found = [] if 1 <= len(elements) <= 25 else [f"{where}.elements: 1 to 25"]
        for i, button in enumerate(elements):
            found += button_problems(f"{where}.elements[{i}]", button)
        return found
    if kind == "context":
        elements = block.get("elements", [])
        found = [] if 1 <= len(elements) <= 10 else [f"{where}.elements: 1 to 10"]
        for i, element in enumerate(elements):
            found += text_problems(
                f"{where}.elements[{i}]", element, 3000, {"mrkdwn", "plain_text"}
            )
        return found
    return []


def payload_problems(payload: Any) -> list[str]:
    """What Slack would refuse in an incoming-webhook payload (the subset a page can use)."""
    if not isinstance(payload, dict):
        return ["payload: an object"]
    found = [] if isinstance(payload.get("text"), str) and payload["text"] else ["text: a string"]
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*found, "blocks: a list of at most 50"]
    for i, block in enumerate(blocks):
        found += block_problems(f"blocks[{i}]", block)
    return found


class IncomingWebhook:
    """Slack's incoming webhook on 127.0.0.1: ``/services/T0/B0/<token>`` takes JSON and
    answers 200 ``ok``; a wrong token is ``404 no_service``, a payload Slack would refuse is
    ``400 invalid_blocks``, and ``answers`` queues other (status, word) replies."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.answers: list[tuple[int, str]] = []
        self.url = ""
        self._server: TestServer | None = None

    async def start(self) -> IncomingWebhook:
        app = web.Application()
        app.router.add_post("/services/T0/B0/{token}", self._receive)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = str(self._server.make_url(f"/services/T0/B0/{TOKEN}"))
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _receive(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.Response(status=404, text="no_service")
        if request.content_type != "application/json":
            return web.Response(status=400, text="invalid_payload")
        payload = json.loads(await request.read())
        self.payloads.append(payload)
        if self.answers:
            status, word = self.answers.pop(0)
            return web.Response(status=status, text=word)
        problems = payload_problems(payload)
        self.problems += problems
        return web.Response(
            status=400 if problems else 200, text="invalid_blocks" if problems else "ok"
        )


@pytest.fixture
async def slack() -> AsyncIterator[IncomingWebhook]:
    hook = await IncomingWebhook().start()
    yield hook
    await hook.stop()


@pytest.fixture
async def channel(slack: IncomingWebhook) -> AsyncIterator[SlackChannel]:
    async with aiohttp.ClientSession() as session:
        yield SlackChannel("team-chat", slack.url, session)


def texts(payload: dict[str, Any]) -> str:
    """Every text in a message, for looking things up in it."""
    return json.dumps(payload["blocks"], ensure_ascii=False)


class TestCallToAct:
    async def test_a_triggered_page_is_a_full_message(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        await channel.send(TRIGGERED, "7:2:triggered:1:team-chat")

        [message] = slack.payloads
        assert slack.problems == []
        assert message["text"] == "[CRITICAL] #7 Checkout is failing"
        header, summary, facts, actions, context = message["blocks"]
        assert header["text"]["text"] == ":red_circle: CRITICAL · Checkout is failing"
        assert summary["text"]["text"] == "payment gateway answers 502 for &lt;1% &amp; rising"
        assert [field["text"] for field in facts["fields"]] == [
            "*Severity*\ncritical",
            "*Rule*\ncheckout-failing",
            "*Component*\ncheckout",
            "*Escalation step*\n1",
            "*Impact*\nabout 40 orders a minute fail",
        ]
        assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
            ("Open incident", INCIDENT),
            ("Acknowledge", ACK),
        ]
        assert context["elements"][0]["text"] == "#7 · triggered · region=eu · for alice"

    async def test_without_an_acknowledge_link_only_the_incident_button_remains(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        unlinked = replace(TRIGGERED, links=PageLinks(incident=INCIDENT, acknowledge=None))

        await channel.send(unlinked, "7:2:triggered:1:team-chat")

        [message] = slack.payloads
        [actions] = [block for block in message["blocks"] if block["type"] == "actions"]
        assert [button["text"]["text"] for button in actions["elements"]] == ["Open incident"]

    async def test_a_reopened_page_says_so_and_asks_again(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        await channel.send(page(7, event=PageEvent.REOPENED, impact=None), "7:3:reopened:0:chat")

        [message] = slack.payloads
        assert message["text"] == "[CRITICAL] Reopened: #7 Checkout is failing"
        assert "Impact" not in texts(message)
        assert "Acknowledge" in texts(message)

    async def test_incident_text_cannot_break_the_markup(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        await channel.send(page(9, title="Refunds <!here> & co"), "9:1:triggered:0:team-chat")

        [message] = slack.payloads
        assert message["text"] == "[CRITICAL] #9 Refunds &lt;!here&gt; &amp; co"
        assert "<!here>" not in texts(message).replace(message["blocks"][0]["text"]["text"], "")

    async def test_long_texts_are_cut_to_slacks_limits(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        long = page(8, title="Checkout is failing " * 20, summary="x" * 5000)

        await channel.send(long, "8:1:triggered:0:team-chat")

        [message] = slack.payloads
        assert slack.problems == []
        header, summary = message["blocks"][:2]
        assert len(header["text"]["text"]) == 150
        assert len(summary["text"]["text"]) == 3000
        assert summary["text"]["text"].endswith("…")


class TestFollowUps:
    @pytest.mark.parametrize(
        ("event", "text"),
        [
            # the same incident reference as the page, a short message of its own
            pytest.param(
                PageEvent.ACKNOWLEDGED, "Acknowledged: #7 Checkout is failing", id="acknowledged"
            ),
            pytest.param(PageEvent.RESOLVED, "Resolved: #7 Checkout is failing", id="resolved"),
        ],
    )
    async def test_updates_are_short_messages_naming_the_incident(
        self, slack: IncomingWebhook, channel: SlackChannel, event: PageEvent, text: str
    ) -> None:
        update = PageMessage(
            replace(TRIGGERED.page, event=event, state=event.value),
            PageLinks(incident=INCIDENT, acknowledge=None),
        )

        await channel.send(update, f"7:2:{event}:1:team-chat")

        [message] = slack.payloads
        assert slack.problems == []
        assert message["text"] == text
        assert [block["type"] for block in message["blocks"]] == ["section", "context"]
        assert f"<{INCIDENT}|#7 Checkout is failing>" in message["blocks"][0]["text"]["text"]


class TestReminderAndDigest:
    async def test_a_reminder_names_the_commander_and_the_due_time(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        reminder = NoticeReminder(
            7, "Checkout is failing", "alice", "pub-3", "2026-11-27T09:30:00Z"
        )

        await channel.send(NoticeReminderMessage(reminder, INCIDENT), "7:reminder:1:team-chat")

        [message] = slack.payloads
        assert slack.problems == []
        assert (
            message["text"] == "Public update due at 2026-11-27T09:30:00Z: #7 Checkout is failing"
        )
        assert "alice, a public update for" in texts(message)

    async def test_a_digest_lists_every_incident_with_its_own_acknowledge_link(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        digest = DigestMessage(tuple(page(incident) for incident in (11, 12, 13)))

        await channel.send(digest, "digest:alice:1:team-chat")

        [message] = slack.payloads
        assert slack.problems == []
        assert message["text"] == "3 incidents need you: bundled pages"
        buttons = [block["accessory"]["url"] for block in message["blocks"] if "accessory" in block]
        assert buttons == [f"https://stormwatch.example/ack/{n}.sig" for n in (11, 12, 13)]

    async def test_a_storm_sized_digest_stays_within_fifty_blocks(
        self, slack: IncomingWebhook, channel: SlackChannel
    ) -> None:
        digest = DigestMessage(tuple(page(incident) for incident in range(100, 160)))

        await channel.send(digest, "digest:alice:2:team-chat")

        [message] = slack.payloads
        assert slack.problems == []
        assert len(message["blocks"]) <= 50
        listed = texts(message)
        assert [n for n in range(100, 160) if f"/ack/{n}.sig" not in listed] == []


class TestAnswers:
    @pytest.mark.parametrize(
        ("status", "word", "reason", "retryable"),
        [
            # the payload, the token or the channel is wrong: no retry can fix it
            pytest.param(
                400, "invalid_payload", FailureReason.REJECTED, False, id="invalid payload"
            ),
            pytest.param(403, "invalid_token", FailureReason.REJECTED, False, id="invalid token"),
            pytest.param(404, "channel_not_found", FailureReason.REJECTED, False, id="no channel"),
            pytest.param(410, "channel_is_archived", FailureReason.REJECTED, False, id="archived"),
            # Slack is busy or failing: later may work
            pytest.param(429, "rate_limited", FailureReason.RATE_LIMITED, True, id="rate limited"),
            pytest.param(500, "rollup_error", FailureReason.SERVER_ERROR, True, id="server error"),
            pytest.param(503, "", FailureReason.SERVER_ERROR, True, id="unavailable"),
        ],
    )
    async def test_statuses_decide_between_giving_up_and_retrying(
        self,
        slack: IncomingWebhook,
        channel: SlackChannel,
        status: int,
        word: str,
        reason: FailureReason,
        retryable: bool,
    ) -> None:
        slack.answers.append((status, word))

        with pytest.raises(DeliveryError) as raised:
            await channel.send(TRIGGERED, "7:2:triggered:1:team-chat")

        assert (raised.value.reason, raised.value.retryable) == (reason, retryable)

    async def test_a_removed_webhook_is_given_up_without_showing_its_url(
        self, slack: IncomingWebhook
    ) -> None:
        removed = slack.url.replace(TOKEN, "revoked")
        async with aiohttp.ClientSession() as session:
            channel = SlackChannel("team-chat", removed, session)
            with pytest.raises(DeliveryError) as raised:
                await channel.send(TRIGGERED, "7:2:triggered:1:team-chat")

        assert (raised.value.reason, raised.value.retryable) == (FailureReason.REJECTED, False)
        assert "revoked" not in f"{raised.value} {channel!r}"
        assert slack.payloads == []
