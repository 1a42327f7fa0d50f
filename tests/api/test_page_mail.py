"""Pages by mail through a real SMTP server that insists on TLS and a login: what the on-call
engineer's mail client shows (subject, parts, the ack link), how an incident's mails thread,
and how the server's answers become delivery decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from detector.web.ack_links import LinkBuilder
from responders.channels.page_mail import PageMailChannel, subject
from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.smtp import SmtpSecurity, SmtpSender, SmtpServer
from responders.messages import (
    DigestMessage,
    NoticeReminder,
    NoticeReminderMessage,
    Page,
    PageEvent,
    PageLinks,
    PageMessage,
)
from tests.fakes import T0, FakeClock
from tests.mail_server import PASSWORD, SENDER, USER, Mailbox, free_port, mail_server

# aiosmtpd counts only STARTTLS as encryption for AUTH, so the implicit-TLS server is told not
# to insist, and warns that it does not
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
ALICE = "person:alice:1"
PAGE = Page(
    event=PageEvent.TRIGGERED,
    incident_id=42,
    title="Checkout is failing",
    severity="critical",
    summary="Payments <declined> & carts stuck",
    state="triggered",
    rule="checkout-errors",
    component="checkout",
    group={"cluster": "eu-1"},
    step=0,
    epoch=1,
    impact="About 120 orders an hour at risk",
    recipient="alice",
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def links(clock: FakeClock) -> LinkBuilder:
    return LinkBuilder("https://stormwatch.example", b"test-key", timedelta(hours=12), clock)


@pytest.fixture(params=[SmtpSecurity.STARTTLS, SmtpSecurity.TLS])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Mailbox, SmtpServer]]:
    with mail_server(request.param, tmp_path) as running:
        yield running


@pytest.fixture
async def sender(server: tuple[Mailbox, SmtpServer]) -> AsyncIterator[SmtpSender]:
    smtp = SmtpSender(server[1])
    yield smtp
    await smtp.close()


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


class TestPagesByMail:
    async def test_a_page_and_its_updates_thread_under_the_incident(
        self,
        server: tuple[Mailbox, SmtpServer],
        sender: SmtpSender,
        links: LinkBuilder,
        clock: FakeClock,
    ) -> None:
        box, _ = server
        channel = PageMailChannel(ALICE, "alice@shop.example", sender, clock.now)
        page_links = links(PAGE, ALICE)
        await channel.send(PageMessage(PAGE, page_links), "42:1:triggered:0:person:alice:1")
        for event in (PageEvent.ACKNOWLEDGED, PageEvent.RESOLVED):
            update = replace(PAGE, event=event, epoch=2)
            await channel.send(PageMessage(update, links(update, ALICE)), f"42:2:{event}:0:a")

        # over TLS (STARTTLS demanded, or implicit), logged in once, one kept connection
        assert box.logins == [(USER, PASSWORD)]
        assert box.encrypted == [True, True, True]
        assert len(set(box.connections)) == 1
        assert box.recipients == [["alice@shop.example"]] * 3
        first, acked, resolved = box.mails
        assert first["Subject"] == "[CRITICAL] #42 Checkout is failing"
        assert first["From"] == SENDER
        assert first["Message-ID"] == "<incident-42@shop.example>"
        assert first["In-Reply-To"] is None
        assert parsedate_to_datetime(first["Date"]) == T0
        assert (first["Auto-Submitted"], first["X-Stormwatch-Incident"]) == ("auto-generated", "42")

        text = text_of(first)
        assert text.startswith("Hello alice,\n\nIncident #42 needs someone.\n")
        assert "Impact: About 120 orders an hour at risk\n" in text
        assert "Summary: Payments <declined> & carts stuck\n" in text
        # the ack link is the one the link builder made for this recipient
        assert page_links.acknowledge is not None
        assert f"Acknowledge: {page_links.acknowledge}\n" in text
        assert "Incident: https://stormwatch.example/api/v1/incidents/42\n" in text
        html = html_of(first)
        assert "Payments &lt;declined&gt; &amp; carts stuck" in html
        assert f'<a href="{page_links.acknowledge}">Acknowledge</a>' in html

        assert acked["Subject"] == "[ACKNOWLEDGED] #42 Checkout is failing"
        assert resolved["Subject"] == "[RESOLVED] #42 Checkout is failing"
        for later in (acked, resolved):
            assert later["In-Reply-To"] == later["References"] == "<incident-42@shop.example>"
            assert later["Message-ID"].endswith("@shop.example>")
            assert "Acknowledge" not in text_of(later)
        assert acked["Message-ID"] != resolved["Message-ID"]
        assert acked["Message-ID"] == "<42.2.acknowledged.0.a@shop.example>"

    async def test_a_digest_gives_each_incident_its_own_ack_link(
        self, server: tuple[Mailbox, SmtpServer], sender: SmtpSender, links: LinkBuilder
    ) -> None:
        box, _ = server
        pages = [replace(PAGE, incident_id=n, title=f"Pool exhausted on db-{n}") for n in (7, 8, 9)]
        digest = DigestMessage(tuple(PageMessage(p, links(p, ALICE)) for p in pages))
        await PageMailChannel(ALICE, "alice@shop.example", sender).send(digest, "digest:a:1")

        [mail] = box.mails
        assert mail["Subject"] == "[STORM] 3 incidents: #7 Pool exhausted on db-7 and 2 more"
        assert mail["X-Stormwatch-Incident"] == "7, 8, 9"
        assert mail["Message-ID"] == "<digest.a.1@shop.example>"
        assert mail["In-Reply-To"] is None
        text = text_of(mail)
        for message in digest.pages:
            assert f"#{message.page.incident_id} [CRITICAL] {message.page.title}\n" in text
            assert f"Acknowledge: {message.links.acknowledge}\n" in text
        assert len({m.links.acknowledge for m in digest.pages}) == 3

    async def test_a_reminder_threads_with_its_incident(
        self, server: tuple[Mailbox, SmtpServer], sender: SmtpSender
    ) -> None:
        box, _ = server
        reminder = NoticeReminder(42, "Checkout is failing", "maria", "pi_1", "2026-11-27T09:30Z")
        message = NoticeReminderMessage(reminder, "https://stormwatch.example/api/v1/incidents/42")
        await PageMailChannel("team", "sre@shop.example", sender).send(message, "42:reminder:x")

        [mail] = box.mails
        assert mail["Subject"] == "[UPDATE DUE] #42 Checkout is failing"
        assert mail["In-Reply-To"] == "<incident-42@shop.example>"
        assert "due at 2026-11-27T09:30Z" in text_of(mail)


class TestServerAnswers:
    async def test_refused_is_permanent_busy_is_retried(
        self, server: tuple[Mailbox, SmtpServer], sender: SmtpSender, links: LinkBuilder
    ) -> None:
        message = PageMessage(PAGE, links(PAGE, ALICE))
        with pytest.raises(DeliveryError) as gone:
            await PageMailChannel(ALICE, "gone@shop.example", sender).send(message, "k1")
        assert (gone.value.reason, gone.value.retryable) == (FailureReason.REJECTED, False)
        with pytest.raises(DeliveryError) as busy:
            await PageMailChannel(ALICE, "busy@shop.example", sender).send(message, "k2")
        assert (busy.value.reason, busy.value.retryable) == (FailureReason.SERVER_ERROR, True)
        # the refusals close the connection, and the next mail gets a new one
        await PageMailChannel(ALICE, "alice@shop.example", sender).send(message, "k3")
        assert len(server[0].mails) == 1

    async def test_a_wrong_password_is_permanent_and_never_shown(
        self, server: tuple[Mailbox, SmtpServer], links: LinkBuilder
    ) -> None:
        wrong = SmtpSender(replace(server[1], password="not-it"))
        with pytest.raises(DeliveryError) as refused:
            await PageMailChannel(ALICE, "alice@shop.example", wrong).send(
                PageMessage(PAGE, links(PAGE, ALICE)), "k"
            )
        assert (refused.value.reason, refused.value.retryable) == (FailureReason.REJECTED, False)
        assert "not-it" not in str(refused.value)
        assert "not-it" not in repr(wrong)

    async def test_no_server_is_a_connection_failure_worth_a_retry(self) -> None:
        down = SmtpSender(SmtpServer("127.0.0.1", free_port(), SENDER, SmtpSecurity.STARTTLS))
        message = PageMessage(PAGE, PageLinks("https://x.example/i/42", None))
        with pytest.raises(DeliveryError) as failed:
            await PageMailChannel(ALICE, "alice@shop.example", down).send(message, "k")
        assert (failed.value.reason, failed.value.retryable) == (FailureReason.CONNECTION, True)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(PageEvent.TRIGGERED, "[CRITICAL] #42 Checkout is failing", id="triggered"),
        # a reopened incident asks for action again, so it is tagged by severity too
        pytest.param(PageEvent.REOPENED, "[CRITICAL] #42 Checkout is failing", id="reopened"),
        pytest.param(PageEvent.ACKNOWLEDGED, "[ACKNOWLEDGED] #42 Checkout is failing", id="ack"),
        pytest.param(PageEvent.RESOLVED, "[RESOLVED] #42 Checkout is failing", id="resolved"),
    ],
)
def test_subject(event: PageEvent, expected: str) -> None:
    page = replace(PAGE, event=event)
    assert subject(PageMessage(page, PageLinks("https://x.example", None))) == expected
