"""Who an escalation step reaches at an instant: its people, whoever its schedules have on
call then, and its shared channels.

Resolved when the step fires, not when the incident opened, so a handoff mid-incident pages the
person on call at that moment. A schedule with nobody on call (or a name no schedule has) is
reported rather than skipped silently: a step that reaches nobody is recorded and the chain
moves on at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from responders.escalation import EscalationStep
from responders.oncall.model import Override, Schedule
from responders.oncall.resolver import on_call_at

_NO_OVERRIDES: Mapping[str, Sequence[Override]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Notified:
    """What one step reaches: ``people`` in order without repeats (the step's own people
    first, then each schedule's on-call person), shared ``channels``, and the step's
    ``empty_schedules`` (nobody on call, or unknown)."""

    people: tuple[str, ...]
    channels: tuple[str, ...]
    empty_schedules: tuple[str, ...]

    @property
    def reaches_anyone(self) -> bool:
        """Whether anyone is told at all: a person or a shared channel."""
        return bool(self.people or self.channels)


def notified_at(
    step: EscalationStep,
    schedules: Mapping[str, Schedule],
    at: datetime,
    overrides: Mapping[str, Sequence[Override]] = _NO_OVERRIDES,
) -> Notified:
    """Resolve ``step`` at ``at``; ``overrides`` are the stored ones, by schedule name."""
    on_call: list[str] = []
    empty: list[str] = []
    for name in step.schedules:
        schedule = schedules.get(name)
        person = None
        if schedule is not None:
            person = on_call_at(schedule, at, overrides.get(name, ()))
        if person is None:
            empty.append(name)
        else:
            on_call.append(person)
    return Notified(
        people=_once([*step.people, *on_call]),
        channels=_once(step.channels),
        empty_schedules=_once(empty),
    )


def _once(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` in order, each the first time it appears."""
    return tuple(dict.fromkeys(names))
