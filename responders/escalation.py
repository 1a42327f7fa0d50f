"""Escalation policies: who is notified at which step, when an unacknowledged page moves on, how
often the chain repeats, and when an acknowledged but unresolved incident is raised again.

A policy is snapshotted onto the incident when it opens, so editing the file mid-incident never
changes the chain an already-running escalation follows. The *people* behind a step's schedules
are resolved when the step fires (``responders.oncall``), so a handoff mid-incident pages
whoever is on call then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Targets notified together: shared channels, people and on-call schedules;
    ``escalate_after``: how long to wait for an ack before moving on."""

    channels: tuple[str, ...] = ()
    escalate_after: timedelta | None = None
    people: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """An ordered chain of steps, run ``1 + repeat`` times; ``ack_timeout`` re-notifies the
    acknowledger when an acknowledged incident is still unresolved after it."""

    name: str
    steps: tuple[EscalationStep, ...]
    repeat: int = 0
    ack_timeout: timedelta | None = None

    def channels_at(self, step: int) -> tuple[str, ...]:
        """The shared channels paged at ``step`` (none past the end of the chain)."""
        return self.steps[step].channels if 0 <= step < len(self.steps) else ()

    def next_escalation(self, step: int, since: datetime) -> datetime | None:
        """When the page at ``step`` escalates if nobody acknowledges, or None at the last step."""
        if step + 1 >= len(self.steps):
            return None
        wait = self.steps[step].escalate_after
        return None if wait is None else since + wait

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready snapshot for the incident row."""
        return {
            "name": self.name,
            "repeat": self.repeat,
            "ack_timeout": _seconds(self.ack_timeout),
            "steps": [
                {
                    "channels": list(step.channels),
                    "people": list(step.people),
                    "schedules": list(step.schedules),
                    "escalate_after": _seconds(step.escalate_after),
                }
                for step in self.steps
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EscalationPolicy:
        """Rebuild a snapshot written by :meth:`to_json` (or by a version before people,
        schedules, repeats and ack timeouts, which had only channels)."""
        steps = tuple(
            EscalationStep(
                channels=tuple(step["channels"]),
                escalate_after=_delta(step["escalate_after"]),
                people=tuple(step.get("people", ())),
                schedules=tuple(step.get("schedules", ())),
            )
            for step in data["steps"]
        )
        return cls(
            name=data["name"],
            steps=steps,
            repeat=int(data.get("repeat", 0)),
            ack_timeout=_delta(data.get("ack_timeout")),
        )


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()


def _delta(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)
