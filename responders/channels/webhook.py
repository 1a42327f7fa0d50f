"""POST pages as JSON to an HTTP endpoint (a chat bridge, a pager gateway, a test receiver).

The JSON body is a public contract (documented in the README): field names, order and spacing
stay as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp

from responders.channels.protocol import DeliveryError, FailureReason, classify_status
from responders.messages import Message, MessageKind, NoticeReminderMessage, PageMessage


class WebhookChannel:
    """One configured webhook endpoint. The URL may hold a key: it never appears in errors."""

    kinds: frozenset[MessageKind] = frozenset({MessageKind.PAGE, MessageKind.NOTICE_REMINDER})

    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        headers: Mapping[str, str] | None = None,
        timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._headers = dict(headers or {})
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r})"

    async def send(self, message: Message, idempotency_key: str) -> None:
        """POST the message's JSON; the Idempotency-Key header lets receivers drop redeliveries."""
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        }
        try:
            async with self._session.post(
                self._url, data=message_body(message), headers=headers, timeout=self._timeout
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            raise DeliveryError(FailureReason.TIMEOUT, retryable=True) from None
        except (aiohttp.ClientError, OSError) as err:
            raise DeliveryError(
                FailureReason.CONNECTION, retryable=True, detail=type(err).__name__
            ) from None
        error = classify_status(status)
        if error is not None:
            raise error


def page_body(message: PageMessage) -> str:
    """The JSON text a webhook receives for a page; the acknowledge link only while it helps."""
    page, links = message.page, message.links
    body: dict[str, Any] = {
        "version": "1",
        "event": page.event.value,
        "incident": {
            "id": page.incident_id,
            "title": page.title,
            "severity": page.severity,
            "summary": page.summary,
            "state": page.state,
            "rule": page.rule,
            "component": page.component,
            "group": dict(page.group),
        },
        "escalation_step": page.step,
        "links": {"incident": links.incident},
    }
    if links.acknowledge:
        body["links"]["acknowledge"] = links.acknowledge
    return json.dumps(body)


def reminder_body(message: NoticeReminderMessage) -> str:
    """The JSON text a webhook receives when a public update is due soon."""
    reminder = message.reminder
    body = {
        "version": "1",
        "event": "notice_reminder",
        "incident": {"id": reminder.incident_id, "title": reminder.title},
        "commander": reminder.commander,
        "public_incident": reminder.public_incident,
        "update_due_at": reminder.due_at,
        "links": {"incident": message.incident_link},
    }
    return json.dumps(body)


def message_body(message: Message) -> str:
    """The JSON text for any message kind the channel delivers."""
    if isinstance(message, NoticeReminderMessage):
        return reminder_body(message)
    if isinstance(message, PageMessage):
        return page_body(message)
    raise DeliveryError(FailureReason.UNSUPPORTED_KIND, retryable=False, detail=message.kind)
