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
from tests.slack_server import TOKEN, IncomingWebhook

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
