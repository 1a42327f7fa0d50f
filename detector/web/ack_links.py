"""Signed, expiring acknowledge links, so an engineer can ack from a phone without a token.

A token is ``payload.signature`` in URL-safe base64; the payload holds the incident id, the
expiry and the incident's epoch when the page was sent, the signature is HMAC-SHA256 with the
service's signing key. The epoch ties a link to one episode: once the incident is resolved and
reopened, a link from an old page must not quietly stop the new episode's escalation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from detector.service.clock import Clock
from responders.messages import Page, PageLinks


class LinkProblem(StrEnum):
    """Why a link cannot be used."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"


class LinkInvalid(ValueError):
    """The link cannot be used, for ``reason``."""

    def __init__(self, reason: LinkProblem) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class AckTarget:
    """What a valid link acknowledges: an incident, in the episode (epoch) it was sent for;
    ``episode`` is None for links made before episodes were recorded."""

    incident_id: int
    episode: int | None = None
    recipient: str | None = None
    """The outbox key the link was sent to (a channel's name, or ``person:<id>:<index>``)."""


def make_token(
    key: bytes,
    incident_id: int,
    expires_at: datetime,
    episode: int | None = None,
    recipient: str | None = None,
) -> str:
    """A token that acknowledges ``incident_id`` until ``expires_at``, in ``episode`` only, on
    behalf of whoever ``recipient`` reaches."""
    data: dict[str, int | str] = {"i": incident_id, "x": int(expires_at.timestamp())}
    if episode is not None:
        data["e"] = episode
    if recipient:
        data["r"] = recipient
    payload = _b64(json.dumps(data).encode())
    return f"{payload}.{_sign(key, payload)}"


def read_token(key: bytes, token: str, now: datetime) -> AckTarget:
    """What a valid token acknowledges; raise LinkInvalid otherwise."""
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        raise LinkInvalid(LinkProblem.MALFORMED)
    if not hmac.compare_digest(signature.encode(), _sign(key, payload).encode()):
        raise LinkInvalid(LinkProblem.BAD_SIGNATURE)
    try:
        data = json.loads(_unb64(payload))  # signed by us, so only a bug could make this fail
        incident_id, expires = int(data["i"]), int(data["x"])
        episode = None if data.get("e") is None else int(data["e"])
        recipient = None if data.get("r") is None else str(data["r"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LinkInvalid(LinkProblem.MALFORMED) from None
    if now.timestamp() >= expires:
        raise LinkInvalid(LinkProblem.EXPIRED)
    return AckTarget(incident_id, episode, recipient)


class LinkBuilder:
    """Builds the links a page carries; the ack link is only offered while it can still help."""

    def __init__(self, base_url: str, key: bytes, ttl: timedelta, clock: Clock) -> None:
        self._base = base_url.rstrip("/")
        self._key = key
        self._ttl = ttl
        self._clock = clock

    def __call__(self, page: Page, recipient: str = "") -> PageLinks:
        """Links for one page sent to ``recipient`` (its outbox key)."""
        acknowledge = None
        if page.event.needs_ack:
            expires_at = self._clock.now() + self._ttl
            token = make_token(self._key, page.incident_id, expires_at, page.epoch, recipient)
            acknowledge = f"{self._base}/ack/{token}"
        return PageLinks(
            incident=f"{self._base}/api/v1/incidents/{page.incident_id}", acknowledge=acknowledge
        )
