"""A page that fails for good on a person's contact method falls through to their next one, in
the transaction that records the failure: Alice's webhook answers 404, so her page arrives by
mail; Bob's mailbox is gone too, so the timeline says he could not be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from detector.engine.cycle import Engine
from detector.engine.delivery import Outcome
from detector.ruleset.channel_specs import EmailTarget, RetrySpec, WebhookTarget
from detector.service.mail import page_mail_channel
from detector.service.metrics import Metrics
from responders.channels.protocol import Channel
from responders.channels.smtp import SmtpSecurity, SmtpSender
from responders.channels.webhook import WebhookChannel
from responders.messages import Page, PageEvent
from tests.fakes import FakeClock, PageReceiver
from tests.mail_server import Mailbox, mail_server
from tests.people import (
    engine_for,
    links,
    open_incidents,
    page_person,
    page_timeline,
    person,
    routes_with,
)

SLOW_RETRY = RetrySpec(max_attempts=3, initial_delay=timedelta(seconds=30))
ONCE = RetrySpec(max_attempts=1)


@dataclass
class Scene:
    """Alice (webhook answering 503 then 404, then mail) and Bob (webhook answering 404, then a
    mailbox that is gone), both paged about an incident of their own."""

    engine: Engine
    clock: FakeClock
    box: Mailbox
    metrics: Metrics
    alice: int
    bob: int


@pytest.fixture
async def scene(pool: asyncpg.Pool, rules_dir: Path, tmp_path: Path) -> AsyncIterator[Scene]:
    clock = FakeClock()
    async with AsyncExitStack() as stack:
        box, server = stack.enter_context(mail_server(SmtpSecurity.STARTTLS, tmp_path))
        sender = SmtpSender(server)
        stack.push_async_callback(sender.close)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        hooks = {"alice": PageReceiver([503, 404]), "bob": PageReceiver([404])}
        for hook in hooks.values():
            await hook.start()
            stack.push_async_callback(hook.stop)
        alice = WebhookTarget(type="webhook", url=hooks["alice"].url, retry=SLOW_RETRY)
        bob = WebhookTarget(type="webhook", url=hooks["bob"].url, retry=ONCE)
        methods = {
            "alice": (alice, EmailTarget(type="email", to="alice@shop.example")),
            "bob": (bob, EmailTarget(type="email", to="gone-bob@shop.example")),
        }
        channels: dict[str, Channel] = {}
        for who, (webhook, mail) in methods.items():
            assert webhook.url is not None
            channels[f"person:{who}:0"] = WebhookChannel(f"person:{who}:0", webhook.url, session)
            channels[f"person:{who}:1"] = page_mail_channel(
                f"person:{who}:1", mail, sender, clock.now
            )
        everyone = [person(who, *targets) for who, targets in methods.items()]
        metrics = Metrics()
        engine = engine_for(pool, routes_with(rules_dir, everyone, channels), clock, metrics)
        [eu, us] = await open_incidents(pool, engine, clock, ["eu-1", "us-1"])
        await page_person(pool, [eu], "person:alice:0", clock.now())
        await page_person(pool, [us], "person:bob:0", clock.now())
        yield Scene(engine, clock, box, metrics, eu, us)


async def test_a_page_falls_through_to_the_next_contact_method(
    pool: asyncpg.Pool, scene: Scene
) -> None:
    engine, clock = scene.engine, scene.clock
    # Alice's webhook answers 503: retried after her method's own delay (30s, ±20 %)
    first = await engine.run_once()
    outcomes = {(d.message.channel, d.outcome, d.channel_type) for d in first.deliveries}
    assert ("person:alice:0", Outcome.RETRY, "webhook") in outcomes
    retry_at = await pool.fetchval(
        "SELECT next_attempt_at FROM outbox WHERE channel = 'person:alice:0'"
    )
    assert timedelta(seconds=24) <= retry_at - clock.now() <= timedelta(seconds=36)
    clock.advance(timedelta(seconds=40))
    await engine.run_once()  # 404: her page goes on to her mailbox, due at once
    await engine.run_once()

    [mail] = scene.box.mails
    assert scene.box.recipients == [["alice@shop.example"]]
    assert mail["Subject"] == f"[CRITICAL] #{scene.alice} Connection pool exhausted on eu-1"
    payload = await pool.fetchval("SELECT payload FROM outbox WHERE channel = 'person:alice:1'")
    page = Page(**{**payload, "event": PageEvent(payload["event"])})
    assert page.recipient == "alice"
    expected = links(clock)(page, "person:alice:1").acknowledge
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("Hello alice,")
    assert f"Acknowledge: {expected}" in text
    assert await page_timeline(pool, scene.alice) == [
        ("page.failed", _entry("person:alice:0", 1, reason="server_error")),
        ("page.dead_lettered", _entry("person:alice:0", 2, reason="rejected")),
        (
            "page.fell_through",
            {"person": "alice", "from": "webhook", "to": "email", "reason": "rejected"},
        ),
        ("page.delivered", _entry("person:alice:1", 1)),
    ]
    key = await pool.fetchval("SELECT idempotency_key FROM outbox WHERE channel = 'person:alice:1'")
    assert key.endswith(":person:alice:0>1")
    delivered = {"channel_type": "email", "outcome": "delivered"}
    assert scene.metrics.registry.get_sample_value("stormwatch_notifications_total", delivered) == 1


async def test_with_no_method_left_the_person_is_unreachable(
    pool: asyncpg.Pool, scene: Scene
) -> None:
    first = await scene.engine.run_once()  # Bob's webhook answers 404
    assert ("person:bob:0", Outcome.DEAD, "webhook") in {
        (d.message.channel, d.outcome, d.channel_type) for d in first.deliveries
    }
    await scene.engine.run_once()  # and his mailbox is gone (550)
    assert await page_timeline(pool, scene.bob) == [
        ("page.dead_lettered", _entry("person:bob:0", 1, reason="rejected")),
        (
            "page.fell_through",
            {"person": "bob", "from": "webhook", "to": "email", "reason": "rejected"},
        ),
        ("page.dead_lettered", _entry("person:bob:1", 1, reason="rejected")),
        ("page.unreachable", {"person": "bob", "reason": "rejected"}),
    ]
    assert scene.box.mails == []
    dead = {"channel_type": "email", "outcome": "dead"}
    assert scene.metrics.registry.get_sample_value("stormwatch_notifications_total", dead) == 1


def _entry(channel: str, attempt: int, **extra: object) -> dict[str, object]:
    return {"channel": channel, "event": "triggered", "attempt": attempt, **extra}
