"""When runs add up to a failing journey: ``failure_threshold`` failed runs in a row fire it,
``success_threshold`` good runs in a row resolve it (Gatus' counters; one pair per journey and
location, so one region's trouble is its own)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Transition(StrEnum):
    """What a run changed for the journey at its location."""

    NONE = "none"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Health:
    """A journey's standing at one location: the current streaks and since when it fails."""

    failures: int = 0
    successes: int = 0
    failing_since: datetime | None = None
    """When the current run of failures began (the first failed run)."""
    firing_since: datetime | None = None
    """When the journey, firing now, began failing: its signal's start."""

    @property
    def firing(self) -> bool:
        """Whether a firing signal stands for this journey and location."""
        return self.firing_since is not None


def advance(
    health: Health, success: bool, at: datetime, failure_threshold: int, success_threshold: int
) -> tuple[Health, Transition]:
    """Count one run; fire on the ``failure_threshold``-th failure in a row, resolve on the
    ``success_threshold``-th success in a row."""
    if not success:
        failing_since = health.failing_since if health.failures else at
        new = Health(health.failures + 1, 0, failing_since, health.firing_since)
        if not health.firing and new.failures >= failure_threshold:
            return replace(new, firing_since=failing_since), Transition.FIRING
        return new, Transition.NONE
    new = Health(0, health.successes + 1, None, health.firing_since)
    if health.firing and new.successes >= success_threshold:
        return replace(new, firing_since=None), Transition.RESOLVED
    return new, Transition.NONE
