"""Pages, update reminders and storm digests by mail, through the service's SMTP sender.

Each mail has a plain-text and an HTML part saying the same (the HTML escaped). An incident's
mails thread together in mail clients: the first page of an incident (triggered, step 0) takes
the incident's root id ``<incident-<id>@<sender's domain>>`` as its ``Message-ID``, every later
mail about it points at that id in ``In-Reply-To`` and ``References`` and has an id of its own,
derived from its idempotency key so a redelivery keeps it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate

from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.smtp import SmtpSender
from responders.messages import (
    DigestMessage,
    Message,
    MessageKind,
    NoticeReminderMessage,
    PageEvent,
    PageMessage,
)

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


@dataclass(frozen=True, slots=True)
class Letter:
    """What a mail says: its subject, its lines of text (links on lines of their own, as
    ``label: url``) and the incidents it is about, the first one threading it."""

    subject: str
    lines: tuple[str, ...]
    incidents: tuple[int, ...]
    root: bool = False
    """Whether this mail starts its incident's thread."""


class PageMailChannel:
    """Mail to one address (a person's contact method, or a team list)."""

    kinds = frozenset({MessageKind.PAGE, MessageKind.NOTICE_REMINDER, MessageKind.DIGEST})

    def __init__(
        self,
        name: str,
        to: str,
        smtp: SmtpSender,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self._to = to
        self._smtp = smtp
        self._now = now

    def __repr__(self) -> str:
        return f"PageMailChannel(name={self.name!r})"

    async def send(self, message: Message, idempotency_key: str) -> None:
        """Hand the mail to the SMTP server; 4xx answers are retried, 5xx are not."""
        server = self._smtp.server
        mail = envelope(letter(message), server.sender, self._to, idempotency_key, server.domain)
        mail["Date"] = formatdate(self._now().timestamp(), usegmt=True)
        await self._smtp.send(mail)


def letter(message: Message) -> Letter:
    """What the mail for ``message`` says."""
    if isinstance(message, PageMessage):
        return page_letter(message)
    if isinstance(message, DigestMessage):
        return digest_letter(message)
    if isinstance(message, NoticeReminderMessage):
        return reminder_letter(message)
    raise DeliveryError(FailureReason.UNSUPPORTED_KIND, retryable=False, detail=message.kind)


def subject(message: PageMessage) -> str:
    """``[CRITICAL] #42 Checkout is failing``; updates name the new state instead."""
    page = message.page
    tag = page.severity.upper() if page.event.needs_ack else page.event.value.upper()
    return f"[{tag}] #{page.incident_id} {page.title}"


_HEADLINES = {
    PageEvent.TRIGGERED: "needs someone",
    PageEvent.REOPENED: "has reopened and needs someone",
    PageEvent.ACKNOWLEDGED: "was acknowledged",
    PageEvent.RESOLVED: "was resolved",
}


def page_letter(message: PageMessage) -> Letter:
    """A page: what happened, the facts, then the links (the ack link only while it helps)."""
    page = message.page
    lines = [*_greeting(page.recipient), f"Incident #{page.incident_id} {_HEADLINES[page.event]}."]
    lines += ["", page.title, *_details(message)]
    lines += ["", *_links(message)]
    first = page.event is PageEvent.TRIGGERED and page.step == 0
    return Letter(subject(message), tuple(lines), (page.incident_id,), root=first)


def _details(message: PageMessage) -> list[str]:
    page = message.page
    facts = [
        ("Severity", page.severity),
        ("Summary", page.summary),
        ("Impact", page.impact or ""),
        ("Component", page.component or ""),
        ("Rule", page.rule),
        ("Group", ", ".join(f"{name}={value}" for name, value in sorted(page.group.items()))),
        ("Escalation step", str(page.step + 1) if page.event.needs_ack else ""),
    ]
    return [f"{label}: {value}" for label, value in facts if value]


def _links(message: PageMessage) -> list[str]:
    links = message.links
    lines = []
    if message.page.event.needs_ack and links.acknowledge:
        lines.append(f"Acknowledge: {links.acknowledge}")
    lines.append(f"Incident: {links.incident}")
    return lines


def _greeting(recipient: str | None) -> list[str]:
    return [f"Hello {recipient},", ""] if recipient else []


def digest_letter(message: DigestMessage) -> Letter:
    """Pages bundled during a storm: one entry per incident, each with its own links."""
    pages = message.pages
    if not pages:
        raise DeliveryError(FailureReason.REJECTED, retryable=False, detail="empty digest")
    first = pages[0].page
    count = len(pages)
    lines = [
        *_greeting(first.recipient),
        f"{count} more incidents need someone. They came too fast to page one by one, so they",
        "are bundled here: acknowledge each on its own link.",
    ]
    for bundled in pages:
        page = bundled.page
        lines += ["", f"#{page.incident_id} [{page.severity.upper()}] {page.title}"]
        lines += [f"Summary: {page.summary}"] if page.summary else []
        lines += _links(bundled)
    title = f"[STORM] {count} incidents: #{first.incident_id} {first.title}"
    title += f" and {count - 1} more" if count > 1 else ""
    return Letter(title, tuple(lines), tuple(m.page.incident_id for m in pages))


def reminder_letter(message: NoticeReminderMessage) -> Letter:
    """A public update falls due soon: write it, or a holding update goes out instead."""
    reminder = message.reminder
    lines = [
        f"The next public update on incident #{reminder.incident_id} is due at {reminder.due_at}.",
        "Write it before then, or a holding update is published in its place.",
        "",
        reminder.title,
        f"Public incident: {reminder.public_incident}",
    ]
    lines += [f"Commander: {reminder.commander}"] if reminder.commander else []
    lines += ["", f"Incident: {message.incident_link}"]
    title = f"[UPDATE DUE] #{reminder.incident_id} {reminder.title}"
    return Letter(title, tuple(lines), (reminder.incident_id,))


def thread_root(incident_id: int, domain: str) -> str:
    """The id every mail about ``incident_id`` threads under."""
    return f"<incident-{incident_id}@{domain}>"


def message_id(idempotency_key: str, domain: str) -> str:
    """A mail's own id, the same on every delivery attempt of one message."""
    return f"<{_ID_UNSAFE.sub('.', idempotency_key).strip('.')}@{domain}>"


def envelope(content: Letter, sender: str, to: str, key: str, domain: str) -> EmailMessage:
    """The mail (without its ``Date``): headers, threading, a text and an HTML part."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = content.subject
    root = thread_root(content.incidents[0], domain) if len(content.incidents) == 1 else None
    mail["Message-ID"] = root if root and content.root else message_id(key, domain)
    if root and not content.root:
        mail["In-Reply-To"] = root
        mail["References"] = root
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Stormwatch-Incident"] = ", ".join(str(i) for i in content.incidents)
    mail.set_content("\n".join(content.lines) + "\n")
    mail.add_alternative(html_body(content), subtype="html")
    return mail


def html_body(content: Letter) -> str:
    """The HTML part: every line escaped, ``label: url`` lines as links."""
    paragraphs = []
    for line in content.lines:
        label, _, url = line.partition(": ")
        if url.startswith(("https://", "http://")) and " " not in url:
            paragraphs.append(f'<p><a href="{html.escape(url)}">{html.escape(label)}</a></p>')
        elif line:
            paragraphs.append(f"<p>{html.escape(line)}</p>")
    title = html.escape(content.subject)
    body = "\n".join(paragraphs)
    head = f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body>\n"
    return f"{head}{body}\n</body></html>\n"
