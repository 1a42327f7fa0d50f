"""Subscribers hear every update: email through a real SMTP server (aiosmtpd) with double
opt-in and RFC 8058 one-click unsubscribe, a signed Statuspage-style webhook, export and
erasure of an address, and the rate limit that never tells who is subscribed."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller

from detector.engine import notice_fanout
from detector.store import subscribers
from detector.store.subscribers import SubscriberKind
from responders.channels.email import EmailChannel, SmtpSecurity, SmtpServer
from responders.channels.protocol import DeliveryError, FailureReason
from responders.messages import Recipient, SubscriptionConfirmMessage
from tests.conftest import RULES, Shop, alert
from tests.fakes import T0, PageReceiver

NOTICE = """    reopen_within: 10m
    notice:
      publish: immediately
      impact: Some customers cannot place an order.
"""
STATUS = "https://status.shop.example"


class Mailbox:
    """An aiosmtpd handler that keeps every mail it accepts."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [mail for mail in self.mails if mail["To"] == address]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


@pytest.fixture
def settings_overrides(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,  # type: ignore[attr-defined]
        "smtp_security": "none",
        "smtp_from": "Shop Status <status@shop.example>",
        "status_page_url": STATUS,
        "status_page_name": "Acme Shop",
        "status_page_time_zone": "Europe/Berlin",
        "subscribe_rate_limit": 4,
    }


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    text = RULES.format(pager_url=pager.url, backup_url=backup.url)
    (directory / "shop.yml").write_text(text.replace("    reopen_within: 10m\n", NOTICE, 1))
    return directory


@pytest.fixture
async def hook() -> AsyncIterator[PageReceiver]:
    receiver = await PageReceiver().start()
    yield receiver
    await receiver.stop()


def link(mail: EmailMessage, kind: str) -> str:
    text = mail.get_content()
    found = re.search(rf"{STATUS}/api/v2/subscribers/{kind}\?token=[\w-]+", text)
    assert found, text
    return found.group(0)


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def subscribe(shop: Shop, body: dict[str, Any], status: int = 202) -> Any:
    response = await shop.client.post("/api/v2/subscribers", json=body)
    assert response.status == status, await response.text()
    return await response.json()


class TestEmailSubscribers:
    async def test_double_opt_in_then_every_update_then_one_click_out(
        self, shop: Shop, mailbox: Mailbox
    ) -> None:
        answer = await subscribe(shop, {"email": "Ana@Example.com", "components": ["checkout"]})
        await shop.cycle()
        (confirmation,) = mailbox.to("ana@example.com")
        assert confirmation["Subject"] == "Confirm your subscription to Acme Shop status updates"
        await shop.post_alerts(alert(cluster="eu-1"))  # before confirming: nothing for Ana
        await shop.cycle()
        await shop.cycle()
        assert len(mailbox.to("ana@example.com")) == 1
        page = await shop.client.get(local(link(confirmation, "confirm")))
        assert "Subscribed" in await page.text()
        assert await subscribe(shop, {"email": "ana@example.com"}) == answer  # same answer
        update = {"status": "identified", "message": "We found the cause."}
        response = await shop.client.post("/api/v1/incidents/1/updates", json=update)
        assert response.status == 201
        await shop.cycle()
        await shop.cycle()
        mail = mailbox.to("ana@example.com")[-1]
        assert mail["Subject"] == "[Acme Shop] Identified: Problems with Checkout"
        assert mail["From"] == "Shop Status <status@shop.example>"
        unsubscribe = link(mail, "unsubscribe")
        assert mail["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = mail.get_content()
        assert "We found the cause." in text
        assert "Our next update will follow by" in text
        exported = await shop.client.get("/api/v1/subscribers?address=ANA@example.com")
        (subscription,) = (await exported.json())["subscriptions"]
        assert subscription["components"] == ["checkout"]
        assert [d["kind"] for d in subscription["deliveries"]] == [
            "subscription_confirm",
            "subscriber_notice",
        ]
        one_click = await shop.client.post(local(unsubscribe), data="List-Unsubscribe=One-Click")
        assert one_click.status == 200
        response = await shop.client.post("/api/v1/incidents/1/updates", json=update)
        await shop.cycle()
        await shop.cycle()
        assert len(mailbox.to("ana@example.com")) == 2
        registry = shop.services.metrics.registry
        labels = {"channel": "email", "outcome": "delivered"}
        assert registry.get_sample_value("stormwatch_subscriber_deliveries_total", labels) == 2

    async def test_bad_input_names_the_field_and_the_limit_applies(self, shop: Shop) -> None:
        assert (await subscribe(shop, {"email": "not-an-address"}, 400))["field"] == "email"
        unknown = await subscribe(shop, {"email": "a@b.example", "components": ["nope"]}, 400)
        assert unknown["field"] == "components"
        await subscribe(shop, {"email": "a@b.example"})
        form = {"email": "c@d.example", "components": "checkout"}
        page = await shop.client.post("/api/v2/subscribers", data=form)  # the no-JS form
        assert page.status == 202
        assert "a confirmation link is on its way" in await page.text()
        assert (await subscribe(shop, {"email": "e@f.example"}, 429))["field"] == "client"


class TestWebhookSubscribers:
    async def test_signed_statuspage_envelope_and_erasure(
        self, shop: Shop, hook: PageReceiver
    ) -> None:
        created = await shop.client.post("/api/v1/subscribers/webhooks", json={"url": hook.url})
        assert created.status == 201
        secret = (await created.json())["secret"]
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        await shop.cycle()
        (body,) = await hook.wait_for(1)
        assert set(body) == {"meta", "page", "incident"}
        assert body["meta"]["unsubscribe"].startswith(f"{STATUS}/api/v2/subscribers/unsubscribe")
        assert body["page"]["status_indicator"] == "major"
        incident = body["incident"]
        assert incident["status"] == "investigating"
        assert incident["name"] == "Problems with Checkout"
        assert incident["incident_updates"][0]["body"].startswith(
            "We are looking into a problem with Checkout."
        )
        timestamp, digest = (
            part.split("=", 1)[1] for part in hook.headers[0]["Stormwatch-Signature"].split(",")
        )
        signed = f"{timestamp}.".encode() + hook.bodies[0]
        assert digest == hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        erased = await shop.client.delete(f"/api/v1/subscribers?address={hook.url}")
        assert (await erased.json())["erased"] == 1
        exported = await shop.client.get(f"/api/v1/subscribers?address={hook.url}")
        assert (await exported.json())["subscriptions"] == []
        assert json.loads(hook.bodies[0]) == body


class Refusing(Mailbox):
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 no such mailbox" if address.startswith("gone") else "451 try again later"


class TestEmailChannel:
    def message(self, address: str) -> SubscriptionConfirmMessage:
        return SubscriptionConfirmMessage(
            Recipient(address, f"{STATUS}/u?token=t", f"{STATUS}/c?token=t"), "Acme Shop"
        )

    async def test_smtp_answers_become_delivery_decisions(self) -> None:
        controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
        controller.start()
        try:
            channel = EmailChannel(
                "email", SmtpServer("127.0.0.1", controller.port, "s@x.example", SmtpSecurity.NONE)
            )
            with pytest.raises(DeliveryError) as gone:
                await channel.send(self.message("gone@x.example"), "k1")
            assert (gone.value.reason, gone.value.retryable) == (FailureReason.REJECTED, False)
            with pytest.raises(DeliveryError) as later:
                await channel.send(self.message("busy@x.example"), "k2")
            assert later.value.retryable
        finally:
            controller.stop()
        closed = EmailChannel("email", SmtpServer("127.0.0.1", free_port(), "s@x.example"))
        with pytest.raises(DeliveryError) as down:
            await closed.send(self.message("a@x.example"), "k3")
        assert (down.value.reason, down.value.retryable) == (FailureReason.CONNECTION, True)


class TestFanOut:
    async def test_a_notice_to_many_is_queued_in_batches(self, shop: Shop) -> None:
        count = 2 * notice_fanout.BATCH + 100
        async with shop.services.pool.acquire() as connection, connection.transaction():
            for n in range(count):
                await subscribers.subscribe(
                    connection, SubscriberKind.EMAIL, f"c{n}@shop.example", [], T0, confirmed=True
                )
        await shop.post_alerts(alert(cluster="eu-1"))
        report = await shop.cycle()
        fired = report.stages["notices"].fired  # type: ignore[attr-defined]
        fan_outs = [f.queued for f in fired if f.outcome == "fanned_out"]
        assert fan_outs == [notice_fanout.BATCH, notice_fanout.BATCH, 100]

    async def test_a_failing_webhook_is_retried_with_backoff(self, shop: Shop) -> None:
        hook = await PageReceiver(statuses=[503]).start()
        try:
            created = await shop.client.post(
                "/api/v1/subscribers/webhooks", json={"url": hook.url, "components": ["checkout"]}
            )
            assert created.status == 201
            await shop.post_alerts(alert(cluster="eu-1"))
            await shop.cycle()
            assert hook.answers == [503]
            await shop.advance(timedelta(seconds=20))  # the first retry waits 30 s ± 20 %
            assert hook.answers == [503]
            await shop.advance(timedelta(seconds=20))
            assert hook.answers == [503, 200]
            assert hook.headers[0]["Idempotency-Key"] == hook.headers[1]["Idempotency-Key"]
            registry = shop.services.metrics.registry
            for outcome, value in (("retry", 1), ("delivered", 1)):
                labels = {"channel": "webhook", "outcome": outcome}
                assert (
                    registry.get_sample_value("stormwatch_subscriber_deliveries_total", labels)
                    == value
                )
        finally:
            await hook.stop()
