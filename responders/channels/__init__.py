"""Delivery channels: one module per integration, all behind the :class:`Channel` protocol.

Channels never retry; they report success or raise :class:`DeliveryError` saying whether a retry
could help. The outbox owns retries, backoff and dead-lettering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class DeliveryError(Exception):
    """A failed delivery; ``reason`` is a short label for metrics, ``retryable`` the decision."""

    def __init__(self, reason: str, *, retryable: bool, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.retryable = retryable
        self.detail = detail


class Channel(Protocol):
    """Something that can deliver a JSON message, identified by an idempotency key."""

    name: str

    async def send(self, body: Mapping[str, Any], idempotency_key: str) -> None:
        """Deliver once; raise DeliveryError on failure."""
        ...


def classify_status(status: int) -> DeliveryError | None:
    """The one place HTTP statuses become delivery decisions (None means delivered)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return DeliveryError("rate_limited", retryable=True, detail="HTTP 429")
    if status in (408, 425) or status >= 500:
        return DeliveryError("server_error", retryable=True, detail=f"HTTP {status}")
    return DeliveryError("rejected", retryable=False, detail=f"HTTP {status}")
