"""When journeys run: on a fixed grid per journey and location, so every replica computes the
same next run and the one that claims it moves it on (``store.probes.claim_due``).

Each (journey, location) gets a stable offset inside its interval, a hash of its names: 200
journeys at one interval start spread over the interval rather than all at its top, and a
journey keeps its slot across restarts and replicas.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def start_offset(journey: str, location: str, interval: timedelta) -> timedelta:
    """The (journey, location)'s fixed place within each interval: its start jitter."""
    digest = hashlib.sha256(f"{journey}\x00{location}".encode()).digest()
    micros = int.from_bytes(digest[:8], "big") % max(_micros(interval), 1)
    return timedelta(microseconds=micros)


def next_run(interval: timedelta, offset: timedelta, after: datetime) -> datetime:
    """The first run strictly after ``after``: ``EPOCH + offset + k * interval``."""
    step = _micros(interval)
    since = _micros(after - EPOCH - offset)
    return EPOCH + offset + timedelta(microseconds=(since // step + 1) * step)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
