"""What every channel promises: the kinds of message it delivers, one send per message, and
failures that carry their own decision (retry or give up) with a reason fit for a metric label."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from responders.messages import Message, MessageKind


class FailureReason(StrEnum):
    """Why a delivery failed; a metric label, so the vocabulary stays small and fixed."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    REJECTED = "rejected"
    UNKNOWN_CHANNEL = "unknown_channel"  # no channel by that name in the running rules
    UNKNOWN_KIND = "unknown_kind"  # a message kind this version cannot read
    UNSUPPORTED_KIND = "unsupported_kind"  # the channel does not deliver that kind


class DeliveryError(Exception):
    """A failed delivery; ``reason`` is the metric label, ``retryable`` the decision."""

    def __init__(self, reason: FailureReason, *, retryable: bool, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.retryable = retryable
        self.detail = detail


class Channel(Protocol):
    """Somewhere messages are delivered, identified per message by an idempotency key."""

    @property
    def name(self) -> str:
        """The channel's name in the rule files."""
        ...

    @property
    def kinds(self) -> frozenset[MessageKind]:
        """The message kinds this channel can deliver."""
        ...

    async def send(self, message: Message, idempotency_key: str) -> None:
        """Deliver once; raise DeliveryError on failure."""
        ...


async def deliver(channel: Channel, message: Message, idempotency_key: str) -> None:
    """Send through ``channel``, refusing at once a kind it does not declare (no retry helps)."""
    if message.kind not in channel.kinds:
        raise DeliveryError(
            FailureReason.UNSUPPORTED_KIND,
            retryable=False,
            detail=f"{channel.name} does not deliver {message.kind} messages",
        )
    await channel.send(message, idempotency_key)


def classify_status(status: int) -> DeliveryError | None:
    """The one place HTTP statuses become delivery decisions (None means delivered)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return DeliveryError(FailureReason.RATE_LIMITED, retryable=True, detail="HTTP 429")
    if status in (408, 425) or status >= 500:
        return DeliveryError(FailureReason.SERVER_ERROR, retryable=True, detail=f"HTTP {status}")
    return DeliveryError(FailureReason.REJECTED, retryable=False, detail=f"HTTP {status}")
