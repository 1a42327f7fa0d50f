"""Time as an injected dependency, so timers and leases can be driven by tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time (timezone-aware, UTC)."""

    def now(self) -> datetime:
        """Return the current instant."""
        ...


class SystemClock:
    """The wall clock used in production."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)
