"""A webhook with a secret signs every request, and a receiver following docs/reference.md tells
our requests from forgeries and from old ones replayed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.webhook import WebhookChannel
from responders.messages import Page, PageEvent, PageLinks, PageMessage
from tests.fakes import FakeClock

SECRET = "whsec-7f3a9c1e5b"
REPLAY_WINDOW = 300  # seconds, as docs/reference.md advises

PAGE = PageMessage(
    Page(
        event=PageEvent.TRIGGERED,
        incident_id=42,
        title="Checkout is failing",
        severity="critical",
        summary="payment gateway answers 502",
        state="triggered",
        rule="checkout-failing",
        component="checkout",
        group={"region": "eu"},
        step=0,
        epoch=1,
    ),
    PageLinks(
        incident="https://stormwatch.example/api/v1/incidents/42",
        acknowledge="https://stormwatch.example/ack/eyJpIjo0Mn0.c2ln",
    ),
)


def verify(secret: bytes, timestamp: str, signature: str, body: bytes, now: float) -> bool:
    """The receiver's check, as docs/reference.md shows it."""
    if abs(now - int(timestamp)) > REPLAY_WINDOW:
        return False  # too old, or from the future: a replay
    signed = timestamp.encode() + b"." + body
    expected = "v1=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class SignedReceiver:
    """An endpoint that accepts only requests signed with ``SECRET`` within the replay window
    of its own clock, and keeps what arrived."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.arrived: list[tuple[bytes, dict[str, str]]] = []
        self.answers: list[int] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hooks/stormwatch", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived.append((body, dict(request.headers)))
        timestamp = request.headers.get("X-Stormwatch-Timestamp", "0")
        signature = request.headers.get("X-Stormwatch-Signature", "")
        status = 200 if verify(SECRET.encode(), timestamp, signature, body, self.now()) else 401
        self.answers.append(status)
        return web.json_response({"ok": status == 200}, status=status)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver_clock() -> FakeClock:
    """The receiver's own clock (it may run ahead of the sender's)."""
    return FakeClock()


@pytest.fixture
async def receiver(receiver_clock: FakeClock) -> AsyncIterator[tuple[SignedReceiver, str]]:
    receiver = SignedReceiver(lambda: receiver_clock.now().timestamp())
    server = TestServer(receiver.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield receiver, str(server.make_url("/hooks/stormwatch"))
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class TestSignedWebhook:
    async def test_the_receiver_verifies_the_signature(
        self,
        receiver: tuple[SignedReceiver, str],
        session: aiohttp.ClientSession,
        clock: FakeClock,
    ) -> None:
        endpoint, url = receiver
        channel = WebhookChannel("pager", url, session, secret=SECRET, now=clock.now)

        await channel.send(PAGE, "42:1:triggered:0:pager")

        assert endpoint.answers == [200]
        [(body, headers)] = endpoint.arrived
        sent_at = int(clock.now().timestamp())
        assert headers["X-Stormwatch-Timestamp"] == str(sent_at)
        expected = hmac.new(SECRET.encode(), f"{sent_at}.".encode() + body, hashlib.sha256)
        assert headers["X-Stormwatch-Signature"] == f"v1={expected.hexdigest()}"
        assert SECRET not in str(headers)

    async def test_a_tampered_body_fails_verification(
        self,
        receiver: tuple[SignedReceiver, str],
        session: aiohttp.ClientSession,
        clock: FakeClock,
    ) -> None:
        endpoint, url = receiver
        channel = WebhookChannel("pager", url, session, secret=SECRET, now=clock.now)
        await channel.send(PAGE, "42:1:triggered:0:pager")
        [(body, headers)] = endpoint.arrived
        timestamp, signature = headers["X-Stormwatch-Timestamp"], headers["X-Stormwatch-Signature"]
        now = clock.now().timestamp()

        tampered = body.replace(b'"critical"', b'"info"')

        assert tampered != body
        assert verify(SECRET.encode(), timestamp, signature, body, now)
        assert not verify(SECRET.encode(), timestamp, signature, tampered, now)
        assert not verify(b"another-secret", timestamp, signature, body, now)

    async def test_a_request_a_few_minutes_late_is_still_accepted(
        self,
        receiver: tuple[SignedReceiver, str],
        session: aiohttp.ClientSession,
        clock: FakeClock,
        receiver_clock: FakeClock,
    ) -> None:
        endpoint, url = receiver
        receiver_clock.advance(timedelta(minutes=4))
        channel = WebhookChannel("pager", url, session, secret=SECRET, now=clock.now)

        await channel.send(PAGE, "42:1:triggered:0:pager")

        assert endpoint.answers == [200]

    async def test_an_old_request_is_refused_as_a_replay(
        self,
        receiver: tuple[SignedReceiver, str],
        session: aiohttp.ClientSession,
        clock: FakeClock,
        receiver_clock: FakeClock,
    ) -> None:
        endpoint, url = receiver
        receiver_clock.advance(timedelta(minutes=5, seconds=1))
        channel = WebhookChannel("pager", url, session, secret=SECRET, now=clock.now)

        with pytest.raises(DeliveryError) as raised:
            await channel.send(PAGE, "42:1:triggered:0:pager")

        # a refused signature will not pass on a retry either; the secret is in no error
        assert (raised.value.reason, raised.value.retryable) == (FailureReason.REJECTED, False)
        assert SECRET not in str(raised.value)
        assert endpoint.answers == [401]

    async def test_without_a_secret_nothing_is_signed(
        self,
        receiver: tuple[SignedReceiver, str],
        session: aiohttp.ClientSession,
    ) -> None:
        endpoint, url = receiver
        channel = WebhookChannel("pager", url, session)

        with pytest.raises(DeliveryError):
            await channel.send(PAGE, "42:1:triggered:0:pager")

        [(_, headers)] = endpoint.arrived
        assert "X-Stormwatch-Timestamp" not in headers
        assert "X-Stormwatch-Signature" not in headers
