"""Frozen on-call types: schedules as the resolver reads them (built from the rule files by
``detector.ruleset``, and from overrides stored in the database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Restriction:
    """When a layer applies, in its rotation's time zone: on ``weekdays`` (0 = Monday) from
    ``start`` to ``end`` local time (``end`` at or before ``start`` runs past midnight)."""

    weekdays: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Layer:
    """A rotation: ``members`` take turns in order, each for ``shift`` (a whole number of hours,
    days or weeks), handing off at ``handoff`` local time in ``time_zone``, counted from
    ``start``'s handoff. Handoffs keep their local wall-clock time across DST changes."""

    name: str
    members: tuple[str, ...]
    shift: timedelta
    handoff: time
    time_zone: ZoneInfo
    start: date
    restrictions: tuple[Restriction, ...] = ()


@dataclass(frozen=True, slots=True)
class Override:
    """``person`` is on call instead of whoever the layers say, from ``start`` to ``end``."""

    person: str
    start: datetime
    end: datetime
    created_by: str = ""
    id: int | None = None
    """The stored override's id (None for overrides written in a file)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """Layers, later ones covering earlier ones where they have someone, then overrides."""

    name: str
    time_zone: ZoneInfo
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True, slots=True)
class Shift:
    """``person`` on call from ``start`` to ``end`` (aware datetimes, end exclusive)."""

    person: str
    start: datetime
    end: datetime
    schedule: str = ""
    """The schedule's name (set by the resolver; empty for a bare layer's shifts)."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Nobody on call from ``start`` to ``end``."""

    start: datetime
    end: datetime
