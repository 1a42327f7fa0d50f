"""Escalation policies: who is paged at which step, and when an unacknowledged page moves on.

A policy is snapshotted onto the incident when it opens, so editing the file mid-incident never
changes who an already-running escalation pages next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Channels paged together; ``escalate_after``: how long to wait for an ack before moving on."""

    channels: tuple[str, ...]
    escalate_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """An ordered chain of steps."""

    name: str
    steps: tuple[EscalationStep, ...]

    def channels_at(self, step: int) -> tuple[str, ...]:
        """The channels paged at ``step`` (none past the end of the chain)."""
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
            "steps": [
                {
                    "channels": list(step.channels),
                    "escalate_after": None
                    if step.escalate_after is None
                    else step.escalate_after.total_seconds(),
                }
                for step in self.steps
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EscalationPolicy:
        """Rebuild a snapshot written by :meth:`to_json`."""
        steps = tuple(
            EscalationStep(
                channels=tuple(step["channels"]),
                escalate_after=None
                if step["escalate_after"] is None
                else timedelta(seconds=step["escalate_after"]),
            )
            for step in data["steps"]
        )
        return cls(name=data["name"], steps=steps)
