"""POST pages as JSON to an HTTP endpoint (a chat bridge, a pager gateway, a test receiver).

The JSON body is a public contract (documented in docs/reference.md): field names, order and
spacing stay as they are. With a secret, every request is signed: ``X-Stormwatch-Timestamp``
carries the Unix time of the send and ``X-Stormwatch-Signature`` is ``v1=`` and the hex
HMAC-SHA256 of ``"<timestamp>.<body>"``, so a receiver can tell our requests from forgeries and
refuse old ones replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import aiohttp

from responders.channels.protocol import DeliveryError, FailureReason, classify_status
from responders.messages import (
    DigestMessage,
    Message,
    MessageKind,
    NoticeReminderMessage,
    PageMessage,
)

TIMESTAMP_HEADER = "X-Stormwatch-Timestamp"
SIGNATURE_HEADER = "X-Stormwatch-Signature"


def _system_now() -> datetime:
    return datetime.now(UTC)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Stormwatch-Signature`` value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class WebhookChannel:
    """One configured webhook endpoint. The URL may hold a key and the secret signs: neither
    appears in errors or ``repr``."""

    type: ClassVar[str] = "webhook"
    kinds: frozenset[MessageKind] = frozenset(
        {MessageKind.PAGE, MessageKind.NOTICE_REMINDER, MessageKind.DIGEST}
    )

    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        headers: Mapping[str, str] | None = None,
        timeout: timedelta = timedelta(seconds=10),
        *,
        secret: str | None = None,
        now: Callable[[], datetime] = _system_now,
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._headers = dict(headers or {})
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())
        self._secret = secret
        self._now = now

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r})"

    async def send(self, message: Message, idempotency_key: str) -> None:
        """POST the message's JSON; the Idempotency-Key header lets receivers drop redeliveries."""
        body = message_body(message).encode()
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        }
        if self._secret:
            timestamp = int(self._now().timestamp())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        await post(self._session, self._url, body, headers, self._timeout)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    within: aiohttp.ClientTimeout,
    *,
    follow_redirects: bool = True,
) -> None:
    """POST ``body`` once and turn the outcome into a delivery decision; the URL, which may
    hold a key, never appears in an error (shared by the JSON-over-HTTP integrations)."""
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=within, allow_redirects=follow_redirects
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


def page_object(message: PageMessage) -> dict[str, Any]:
    """A page as a JSON object; the acknowledge link only while it helps, the impact only
    when one was estimated."""
    page, links = message.page, message.links
    incident: dict[str, Any] = {
        "id": page.incident_id,
        "title": page.title,
        "severity": page.severity,
        "summary": page.summary,
        "state": page.state,
        "rule": page.rule,
        "component": page.component,
        "group": dict(page.group),
    }
    if page.impact:
        incident["impact"] = page.impact
    body: dict[str, Any] = {
        "version": "1",
        "event": page.event.value,
        "incident": incident,
        "escalation_step": page.step,
        "links": {"incident": links.incident},
    }
    if links.acknowledge:
        body["links"]["acknowledge"] = links.acknowledge
    return body


def page_body(message: PageMessage) -> str:
    """The JSON text a webhook receives for a page."""
    return json.dumps(page_object(message))


def digest_body(message: DigestMessage) -> str:
    """The JSON text for pages bundled during a storm: each page as it would have gone alone."""
    body = {
        "version": "1",
        "event": "digest",
        "pages": [page_object(page) for page in message.pages],
    }
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
    if isinstance(message, DigestMessage):
        return digest_body(message)
    raise DeliveryError(FailureReason.UNSUPPORTED_KIND, retryable=False, detail=message.kind)
