"""Pages to a Slack-compatible incoming webhook as Block Kit messages.

A call to act (``triggered``, ``reopened``) is a full message: header, summary, fields, buttons
to open the incident and to acknowledge it, a context line. Acknowledgements and resolutions are
short follow-up messages naming the same incident (an incoming webhook cannot edit what it
posted). Every message carries ``text``, the fallback notifications and screen readers show.
Texts are mrkdwn, so ``&``, ``<`` and ``>`` from incidents are escaped. Slack answers 200
``ok``; 400/403/404/410 (``invalid_payload``, ``invalid_token``, ``channel_not_found``,
``no_service``, ``channel_is_archived``) cannot be fixed by retrying, 429 and 5xx can.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import aiohttp

from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.webhook import post
from responders.messages import (
    DigestMessage,
    Message,
    MessageKind,
    NoticeReminderMessage,
    PageEvent,
    PageMessage,
)

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_DIGEST_PAGES = 20
"""Pages a digest lists in a section each, with a button; the rest share sections, one line
each (a message holds at most 50 blocks)."""

_MARKS = {
    "critical": ":red_circle:",
    "major": ":large_orange_circle:",
    "minor": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}
_FOLLOW_UPS = {
    PageEvent.ACKNOWLEDGED: (":eyes:", "Acknowledged"),
    PageEvent.RESOLVED: (":white_check_mark:", "Resolved"),
}


class SlackChannel:
    """One incoming-webhook URL (the URL is the secret: it never appears in errors or
    ``repr``)."""

    type: ClassVar[str] = "slack"
    kinds: frozenset[MessageKind] = frozenset(
        {MessageKind.PAGE, MessageKind.NOTICE_REMINDER, MessageKind.DIGEST}
    )

    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    def __repr__(self) -> str:
        return f"SlackChannel(name={self.name!r})"

    async def send(self, message: Message, idempotency_key: str) -> None:
        """POST the Block Kit message once (incoming webhooks take no idempotency key)."""
        body = json.dumps(slack_message(message)).encode()
        headers = {"Content-Type": "application/json"}
        await post(self._session, self._url, body, headers, self._timeout)


def slack_message(message: Message) -> dict[str, Any]:
    """The incoming-webhook payload (``text`` and ``blocks``) for a message kind Slack gets."""
    if isinstance(message, PageMessage):
        if message.page.event.needs_ack:
            return _call_to_act(message)
        return _follow_up(message)
    if isinstance(message, NoticeReminderMessage):
        return _reminder(message)
    if isinstance(message, DigestMessage):
        return _digest(message)
    raise DeliveryError(FailureReason.UNSUPPORTED_KIND, retryable=False, detail=message.kind)


def _call_to_act(message: PageMessage) -> dict[str, Any]:
    page, links = message.page, message.links
    mark = _MARKS.get(page.severity, ":red_circle:")
    reopened = "Reopened: " if page.event is PageEvent.REOPENED else ""
    fields = [
        ("Severity", page.severity),
        ("Rule", page.rule),
        ("Component", page.component or "none"),
        ("Escalation step", str(page.step)),
    ]
    if page.impact:
        fields.append(("Impact", page.impact))
    buttons = [_button("Open incident", links.incident, "open_incident")]
    if links.acknowledge:
        buttons.append(_button("Acknowledge", links.acknowledge, "acknowledge", primary=True))
    blocks = [
        _header(f"{mark} {page.severity.upper()} · {reopened}{page.title}"),
        _section(_escape(page.summary) if page.summary else "_No summary._"),
        {"type": "section", "fields": [_field(label, value) for label, value in fields]},
        {"type": "actions", "elements": buttons},
        _context(_escape(_context_line(message))),
    ]
    text = f"[{page.severity.upper()}] {reopened}{_reference(page.incident_id)} {page.title}"
    return {"text": _escape(text), "blocks": blocks}


def _context_line(message: PageMessage) -> str:
    page = message.page
    line = f"{_reference(page.incident_id)} · {page.event}{_labels(page.group)}"
    return f"{line} · for {page.recipient}" if page.recipient else line


def _follow_up(message: PageMessage) -> dict[str, Any]:
    page = message.page
    mark, word = _FOLLOW_UPS.get(page.event, (":information_source:", page.event.value))
    link = _link(message.links.incident, f"{_reference(page.incident_id)} {page.title}")
    blocks = [
        _section(f"{mark} *{word}*: {link}"),
        _context(_escape(f"{page.severity} · {page.rule} · state {page.state}")),
    ]
    text = f"{word}: {_reference(page.incident_id)} {page.title}"
    return {"text": _escape(text), "blocks": blocks}


def _reminder(message: NoticeReminderMessage) -> dict[str, Any]:
    reminder = message.reminder
    who = f"{_escape(reminder.commander)}, a" if reminder.commander else "A"
    link = _link(message.incident_link, f"{_reference(reminder.incident_id)} {reminder.title}")
    blocks = [
        _section(
            f":memo: {who} public update for {link} is due at {_escape(reminder.due_at)}. "
            "Write it before then, or a holding update goes out in its place."
        ),
        _context(_escape(f"Public incident {reminder.public_incident}")),
    ]
    text = f"Public update due at {reminder.due_at}: {_reference(reminder.incident_id)}"
    return {"text": _escape(f"{text} {reminder.title}"), "blocks": blocks}


def _digest(message: DigestMessage) -> dict[str, Any]:
    count = len(message.pages)
    title = f"{count} incident{'s' if count != 1 else ''} need{'s' if count == 1 else ''} you"
    blocks: list[Block] = [_header(f":rotating_light: {title}")]
    blocks += [_digest_entry(page) for page in message.pages[:MAX_DIGEST_PAGES]]
    rest = [_digest_line(page) for page in message.pages[MAX_DIGEST_PAGES:]]
    blocks += _packed(rest, MAX_BLOCKS - len(blocks) - 1)
    blocks.append(_context("Bundled during a storm: each incident has its own acknowledge link."))
    return {"text": f"{title}: bundled pages", "blocks": blocks}


def _packed(lines: list[str], budget: int) -> list[Block]:
    """``lines`` in as few sections as fit Slack's text limit, at most ``budget`` of them (the
    last then says how many lines it could not hold)."""
    sections: list[list[str]] = []
    size = MAX_SECTION
    for line in lines:
        if size + len(line) + 1 > MAX_SECTION - 100:  # room for the closing count
            sections.append([])
            size = 0
        sections[-1].append(line)
        size += len(line) + 1
    if len(sections) > budget:
        left = sum(len(section) for section in sections[budget:])
        sections = sections[:budget]
        sections[-1].append(f"…and {left} more: see the incident list in Stormwatch.")
    return [_section("\n".join(section)) for section in sections]


def _digest_entry(message: PageMessage) -> Block:
    section = _section(_digest_line(message, ack_inline=False))
    if message.links.acknowledge:
        action = f"acknowledge-{message.page.incident_id}"
        section["accessory"] = _button("Acknowledge", message.links.acknowledge, action)
    return section


def _digest_line(message: PageMessage, *, ack_inline: bool = True) -> str:
    page, links = message.page, message.links
    line = f"{_MARKS.get(page.severity, ':red_circle:')} *{_escape(page.severity.upper())}* "
    line += _link(links.incident, f"{_reference(page.incident_id)} {page.title}")
    if links.acknowledge and ack_inline:
        line += f" · {_link(links.acknowledge, 'acknowledge')}"
    return line


def _reference(incident_id: int) -> str:
    return f"#{incident_id}"


def _labels(group: Mapping[str, str]) -> str:
    return "".join(f" · {key}={value}" for key, value in sorted(group.items()))


def _escape(text: str) -> str:
    """Slack's mrkdwn needs only ``&``, ``<`` and ``>`` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{url}|{_escape(label)}>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(text: str) -> Block:
    return {"type": "header", "text": _plain(_clip(text, MAX_HEADER))}


def _section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(mrkdwn, MAX_SECTION)}}


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(f"*{label}*\n{_escape(value)}", MAX_FIELD)}


def _context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(mrkdwn, 3000)}]}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _button(label: str, url: str, action: str, *, primary: bool = False) -> Block:
    button: Block = {"type": "button", "text": _plain(label), "url": url, "action_id": action}
    if primary:
        button["style"] = "primary"
    return button
