"""On call with the shipped files, on Black Friday: a pool exhaustion pages the person on call
now by mail, moves on to the next person when nobody answers, and stops when the first person
acknowledges from the link in their mail; the on-call view and the calendar feed say who is
next. Mail goes through a real SMTP server that insists on STARTTLS (certificate from a CA the
test makes), Slack to a local server that checks each message's shape.

Friday 2026-11-27 09:00 UTC is 10:00 in Berlin and 09:00 in Lisbon: the weekly ``primary``
rotation (amira, jonas, priya, handing over on Mondays at 09:00 Berlin since 2026-01-05) is in
its 47th week, so jonas is on call until Monday, then priya; ``secondary`` is tomas, whose
business-hours layer (Lisbon, weekdays 09:00-17:00) covers the weekly one.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from icalendar import Calendar

from detector.service.app import create_app
from detector.web.context import SERVICES
from responders.channels.smtp import SmtpSecurity
from tests.conftest import alert, payload, settings_for
from tests.fakes import FakeClock, PageReceiver
from tests.mail_server import Mailbox, mail_server
from tests.slack_server import IncomingWebhook

REPO_RULES = Path(__file__).resolve().parents[2] / "rules"
ACK_LINK = re.compile(r"https://stormwatch\.example(/ack/[A-Za-z0-9_.\-]+)")
JONAS, TOMAS = "jonas.weber@shop.example", "tomas.ortega@shop.example"
NEXT_HANDOFF = "2026-11-30T08:00:00+00:00"  # Monday 09:00 in Berlin
POOL = alert(
    severity="page",
    component="pgbouncer",
    instance="pgbouncer-0:9127",
    database="shop",
    cluster="shop-prod",
)


@dataclass
class OnCall:
    """The service on the shipped rules, with where its pages land."""

    client: TestClient
    clock: FakeClock
    mailbox: Mailbox
    chat: PageReceiver
    slack: IncomingWebhook

    async def cycle(self, after: timedelta = timedelta(0)) -> None:
        self.clock.advance(after)
        await self.client.app[SERVICES].engine.run_once()

    def mails(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every mail so far."""
        return [
            (recipients[0], " ".join(str(mail["Subject"]).split()))
            for mail, recipients in zip(self.mailbox.mails, self.mailbox.recipients, strict=True)
        ]

    def ack_path(self, to: str) -> str:
        """The acknowledge link in the last call to act mailed to ``to``, as a path."""
        mail = next(
            m
            for m, rcpt in reversed(
                list(zip(self.mailbox.mails, self.mailbox.recipients, strict=True))
            )
            if rcpt == [to] and str(m["Subject"]).strip().startswith("[CRITICAL]")
        )
        found = ACK_LINK.search(text_of(mail))
        assert found is not None, text_of(mail)
        return found.group(1)

    async def incident(self) -> dict[str, Any]:
        listing = await (await self.client.get("/api/v1/incidents")).json()
        (only,) = listing["incidents"]
        detail: dict[str, Any] = await (
            await self.client.get(f"/api/v1/incidents/{only['id']}")
        ).json()
        return detail


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def shipped_rules(target: Path, chat: PageReceiver, backup: PageReceiver) -> Path:
    """The shipped rules, their example webhooks pointed at the test's receivers."""
    target.mkdir()
    for source in REPO_RULES.glob("*.yml"):
        text = source.read_text()
        text = text.replace("http://127.0.0.1:8080/stormwatch/page-secondary", backup.url)
        text = text.replace("http://127.0.0.1:8080/stormwatch/", chat.url + "/")
        (target / source.name).write_text(text)
    shutil.copy(REPO_RULES / "README.md", target / "README.md")
    return target


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Mailbox, Any]]:
    with mail_server(SmtpSecurity.STARTTLS, tmp_path) as running:
        yield running


@pytest.fixture
async def slack() -> AsyncIterator[IncomingWebhook]:
    hook = await IncomingWebhook().start()
    yield hook
    await hook.stop()


async def start(
    database_url: str, rules: Path, smtp: tuple[Mailbox, Any], chat: PageReceiver, slack: Any
) -> AsyncIterator[OnCall]:
    mailbox, server = smtp
    settings = settings_for(
        database_url,
        rules,
        smtp_host=server.host,
        smtp_port=server.port,
        smtp_security=SmtpSecurity.STARTTLS,
        smtp_username=server.username,
        smtp_password=server.password,
        smtp_from=server.sender,
        smtp_ca_file=server.ca_file,
    )
    clock = FakeClock()
    client = TestClient(TestServer(create_app(settings, clock=clock), host="127.0.0.1"))
    await client.start_server()
    try:
        yield OnCall(client, clock, mailbox, chat, slack)
    finally:
        await client.close()


@pytest.fixture
def rules(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    """The shipped rule files, their shared channels pointed at the test's receivers."""
    return shipped_rules(tmp_path / "rules", pager, backup)


@pytest.fixture
async def shipped(
    database_url: str,
    rules: Path,
    smtp: tuple[Mailbox, Any],
    pager: PageReceiver,
    slack: IncomingWebhook,
) -> AsyncIterator[OnCall]:
    async for running in start(database_url, rules, smtp, pager, slack):
        yield running


@pytest.fixture
async def tomas_on_slack(
    database_url: str,
    rules: Path,
    smtp: tuple[Mailbox, Any],
    pager: PageReceiver,
    slack: IncomingWebhook,
) -> AsyncIterator[OnCall]:
    """The shipped files with Tomás's first contact method a Slack incoming webhook."""
    oncall = rules / "oncall.yml"
    mail = "      - type: email\n        to: tomas.ortega@shop.example\n"
    assert mail in oncall.read_text()
    oncall.write_text(
        oncall.read_text().replace(mail, f"      - type: slack\n        url: {slack.url}\n")
    )
    async for running in start(database_url, rules, smtp, pager, slack):
        yield running


async def test_the_person_on_call_is_paged_by_mail_escalation_stops_on_the_emailed_link(
    shipped: OnCall,
) -> None:
    answer = await shipped.client.post("/api/v1/alertmanager", json=payload(POOL))
    assert answer.status == 200
    await shipped.cycle()

    assert shipped.mails() == [
        (JONAS, "[CRITICAL] #1 Database connection pool exhausted (shop on shop-prod)")
    ]
    assert all(shipped.mailbox.encrypted)

    await shipped.cycle(timedelta(minutes=4))
    assert len(shipped.mails()) == 1  # nobody else before the step's 5 minutes
    await shipped.cycle(timedelta(minutes=1))
    assert [to for to, _ in shipped.mails()] == [JONAS, TOMAS]

    # Jonas follows the link in his mail: the page asks nothing, the button acknowledges
    path = shipped.ack_path(JONAS)
    page = await shipped.client.get(path)
    assert page.status == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    acked = await shipped.client.post(path, data={})
    assert acked.status == 200
    assert "Escalation stopped" in await acked.text()

    incident = await shipped.incident()
    assert (incident["state"], incident["acknowledged_by"]) == ("acknowledged", "jonas")
    ack = next(e for e in incident["timeline"] if e["kind"] == "incident.acknowledged")
    assert ack["detail"]["by"] == "jonas"
    assert ack["detail"]["via"] == "link:email"

    await shipped.cycle()
    await shipped.cycle(timedelta(minutes=30))  # well past every step's delay
    subjects = shipped.mails()
    assert [s for _, s in subjects if s.startswith("[CRITICAL]")] == [
        "[CRITICAL] #1 Database connection pool exhausted (shop on shop-prod)"
    ] * 2
    assert sorted(to for to, s in subjects if s.startswith("[ACKNOWLEDGED]")) == [JONAS, TOMAS]

    # Who is on call now, and next
    view = await (await shipped.client.get("/api/v1/oncall?schedule=primary")).json()
    (primary,) = view["schedules"]
    assert primary["on_call"]["id"] == "jonas"
    assert primary["until"] == NEXT_HANDOFF
    handoff = primary["next"][0]
    assert (handoff["person"]["id"], handoff["start"]) == ("priya", NEXT_HANDOFF)

    # The calendar feed a phone subscribes to says the same
    feed = urlsplit(primary["calendar"])
    answer = await shipped.client.get(f"{feed.path}?{feed.query}")
    assert answer.status == 200
    events = Calendar.from_ical(await answer.read()).walk("VEVENT")
    starts = {event.decoded("DTSTART").astimezone(UTC): str(event["SUMMARY"]) for event in events}
    assert "Priya Nair" in starts[datetime(2026, 11, 30, 8, 0, tzinfo=UTC)]
    assert any("Jonas Weber" in summary for summary in starts.values())


async def test_escalation_story_mail_then_slack_ack_timeout_and_resolution(
    tomas_on_slack: OnCall,
) -> None:
    story = tomas_on_slack
    title = "Database connection pool exhausted (shop on shop-prod)"
    await story.client.post("/api/v1/alertmanager", json=payload(POOL))
    await story.cycle()
    assert story.mails() == [(JONAS, f"[CRITICAL] #1 {title}")]
    assert story.slack.payloads == []

    # No ack in 5 minutes: the secondary, Tomás, is paged on Slack
    await story.cycle(timedelta(minutes=5))
    (paged,) = story.slack.payloads
    assert story.slack.problems == []
    blocks = repr(paged["blocks"])
    assert title in paged["text"]
    assert "Acknowledge" in blocks
    assert "/ack/" in blocks
    assert len(story.mails()) == 1

    # Jonas acknowledges from his mail: escalation stops
    assert (await story.client.post(story.ack_path(JONAS), data={})).status == 200
    await story.cycle()
    assert "acknowledged" in story.slack.payloads[-1]["text"].lower()
    await story.cycle(timedelta(minutes=20))  # past the last step and the repeat's wait
    assert [s for _, s in story.mails() if s.startswith("[CRITICAL]")] == [f"[CRITICAL] #1 {title}"]
    slack_before = len(story.slack.payloads)

    # Still unresolved two hours after the ack: Jonas is called again
    await story.cycle(timedelta(hours=2))
    incident = await story.incident()
    assert incident["state"] == "triggered"
    kinds = [entry["kind"] for entry in incident["timeline"]]
    assert "incident.ack_timeout" in kinds
    assert [to for to, s in story.mails() if s.startswith("[CRITICAL]")] == [JONAS, JONAS]

    # Resolved by hand: everyone who was paged hears it
    resolved = await story.client.post(
        "/api/v1/incidents/1/resolve", json={"by": "jonas", "reason": "pool resized"}
    )
    assert resolved.status == 200
    await story.cycle()
    assert [to for to, s in story.mails() if s.startswith("[RESOLVED]")] == [JONAS]
    assert "resolved" in story.slack.payloads[-1]["text"].lower()
    assert len(story.slack.payloads) == slack_before + 1
    assert story.slack.problems == []
