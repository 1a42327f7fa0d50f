"""A per-client request limit for the public endpoints that write (subscribe, unsubscribe).

In memory and per replica: it stops a script from mailing confirmation links to a list of
strangers through us, not a distributed attack (a proxy in front does that).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

_MAX_CLIENTS = 10_000


class RateLimiter:
    """At most ``limit`` requests per ``window`` for each key."""

    def __init__(self, limit: int, window: timedelta, now: Callable[[], datetime]) -> None:
        self._limit = limit
        self._window = window
        self._now = now
        self._hits: dict[str, deque[datetime]] = {}

    def allow(self, key: str) -> bool:
        """Count a request from ``key``; False when it is over the limit."""
        now = self._now()
        if len(self._hits) > _MAX_CLIENTS:
            self._forget_idle(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= self._limit:
            return False
        hits.append(now)
        return True

    def _forget_idle(self, now: datetime) -> None:
        cutoff = now - self._window
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]
