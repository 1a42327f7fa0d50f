"""Public updates to subscribers' webhooks, in the Statuspage envelope (``meta``, ``page``,
``incident``) that status-page consumers already parse, signed with the subscriber's key.

The signature header is ``Stormwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>">``: a receiver recomputes it with its key and rejects old timestamps (replays).
Redirects count as failures, as Statuspage counts them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import aiohttp

from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.webhook import post
from responders.messages import Message, MessageKind, SubscriberNoticeMessage

SIGNATURE_HEADER = "Stormwatch-Signature"
DOCUMENTATION = "https://support.atlassian.com/statuspage/docs/enable-webhook-notifications/"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def envelope(message: SubscriberNoticeMessage) -> bytes:
    """The JSON body: Statuspage's webhook envelope."""
    body = {
        "meta": {
            "unsubscribe": message.recipient.unsubscribe_link,
            "documentation": DOCUMENTATION,
            "generated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        },
        "page": dict(message.page),
        "incident": dict(message.incident),
    }
    return json.dumps(body).encode()


class SubscriberWebhookChannel:
    """POSTs signed public updates to each subscriber's URL."""

    kinds = frozenset({MessageKind.SUBSCRIBER_NOTICE})

    def __init__(
        self, name: str, session: aiohttp.ClientSession, timeout: timedelta = timedelta(seconds=30)
    ) -> None:
        self.name = name
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    async def send(self, message: Message, idempotency_key: str) -> None:
        """POST the envelope; 2xx delivers, anything else fails (3xx included)."""
        if not isinstance(message, SubscriberNoticeMessage) or not message.recipient.secret:
            raise DeliveryError(FailureReason.UNSUPPORTED_KIND, retryable=False)
        body = envelope(message)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            SIGNATURE_HEADER: signature(message.recipient.secret, body, int(time.time())),
        }
        await post(
            self._session,
            message.recipient.address,
            body,
            headers,
            self._timeout,
            follow_redirects=False,  # a subscriber's endpoint answers itself or not at all
        )
