"""Webhook bodies committed moments ago, so a byte-identical resend is answered from memory.

Alertmanager resends what it is unsure arrived: after a timeout or a 5xx it retries the same
body within seconds, and those retries peak exactly when the intake is slowest. The engine's
deduplication already makes a resend harmless; remembering recent bodies makes it cheap too (no
parse, no write, no expansion). It stays exact: a body is remembered only after its commit, is
recognised by its SHA-256 digest, and only within ``window`` and never once a firing alert in it
has passed its endsAt (the same bytes would then read as a resolution). The cost is that such a
resend does not count as a fresh arrival of its alerts.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.domain.model import AlertStatus
from detector.intake.alertmanager import WebhookPayload, ends_at_of


@dataclass(frozen=True, slots=True)
class _Entry:
    alerts: int
    stored_at: datetime
    until: datetime


def digest_of(body: bytes) -> bytes:
    """What a body is recognised by."""
    return hashlib.sha256(body).digest()


class ReplayMemo:
    """Digests of recently committed bodies, oldest first, bounded by age and count."""

    def __init__(self, window: timedelta, max_entries: int = 100_000) -> None:
        self._window = window
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def recall(self, digest: bytes, now: datetime) -> int | None:
        """The alert count of the body with this digest if it was stored and would still read
        the same at ``now``; None otherwise."""
        entry = self._entries.get(digest)
        if entry is None or now >= entry.until:
            return None
        return entry.alerts

    def remember(self, digest: bytes, payload: WebhookPayload, now: datetime) -> None:
        """Note a body just committed; forget what has aged out or is over the count bound."""
        if not self._window:
            return
        until = now + self._window
        for alert in payload["alerts"]:
            ends_at = ends_at_of(alert)
            if alert["status"] is AlertStatus.FIRING and ends_at is not None and ends_at > now:
                until = min(until, ends_at)
        self._entries.pop(digest, None)
        self._entries[digest] = _Entry(len(payload["alerts"]), now, until)
        oldest = now - self._window
        while self._entries and (
            len(self._entries) > self._max_entries
            or next(iter(self._entries.values())).stored_at <= oldest
        ):
            self._entries.popitem(last=False)

    def forget_all(self) -> None:
        """Forget every body, as after a rule change: a resend must then be stored again, so
        that the new rules see its alerts (a rule added for a firing one adopts it)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
