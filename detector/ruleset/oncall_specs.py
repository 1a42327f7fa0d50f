"""The on-call sections of the rule files: people (with their contact methods in order) and
schedules (rotation layers, their restrictions, and overrides written in the file).

The specs validate what one entry can say about itself; references between entries (a layer's
members, an override's person) are checked by :mod:`detector.ruleset.oncall_checks`. Each spec
builds the frozen type the resolver reads (``responders.oncall.model``).

Times of day are written ``"HH:MM"`` in quotes (YAML 1.1 reads an unquoted 17:00 as the number
1020); ``to: "24:00"`` runs to midnight. Weekdays are ``mon``..``sun`` or the full names, and
ranges such as ``mon:fri``, as in maintenance windows.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from detector.domain.durations import PositiveDuration, format_duration
from detector.ruleset.channel_specs import ContactMethodSpec, Name, Strict
from detector.ruleset.maintenance import (
    DAY_MINUTES,
    WEEK,
    Instant,
    TimeOfDay,
    TimeZone,
    Weekdays,
)
from responders.oncall.model import Layer, Override, Restriction, Schedule

HOUR = timedelta(hours=1)


def _zone_name(value: str) -> str:
    """Keep the name as written, but only if zoneinfo knows it."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name like Europe/Berlin or UTC"
        ) from None
    return value


def _whole_hours(value: timedelta) -> timedelta:
    if value % HOUR:
        raise ValueError(
            f"shift {format_duration(value)} is not a whole number of hours:"
            " write hours, days or weeks, like 12h, 1d or 1w"
        )
    return value


TimeZoneName = Annotated[
    str, AfterValidator(_zone_name), Field(min_length=1, examples=["Europe/Berlin"])
]
"""An IANA time zone, kept as the name written."""
ShiftLength = Annotated[PositiveDuration, AfterValidator(_whole_hours)]
Days = Annotated[
    Weekdays,
    Field(min_length=1),
    WithJsonSchema({"type": "array", "items": {"type": "string", "examples": ["mon:fri"]}}),
]


def _listed(value: tuple[str, ...]) -> tuple[str, ...]:
    """Like ``min_length=1``, but silent when an item already failed: one error per mistake."""
    if not value:
        raise ValueError("empty list: list at least one")
    return value


def _clock(minutes: int) -> time:
    """Minutes after midnight as a time of day ("24:00" is midnight, read as an end)."""
    return time(minutes // 60, minutes % 60) if minutes < DAY_MINUTES else time(0)


class PersonSpec(Strict):
    """Someone who can be paged: ``contact_methods`` are tried in order, a method that fails
    for good falling through to the next."""

    id: Name
    name: str = Field(min_length=1, max_length=200)
    time_zone: TimeZoneName
    contact_methods: tuple[ContactMethodSpec, ...] = ()


class RestrictionSpec(Strict):
    """When a layer applies: on ``days`` from ``from`` to ``to`` local time (a ``to`` at or
    before ``from`` runs past midnight, into the next day)."""

    model_config = ConfigDict(populate_by_name=True)

    days: Days = WEEK
    from_: TimeOfDay = Field(alias="from")
    to: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.from_ == DAY_MINUTES:
            raise ValueError('from "24:00" is the next day\'s "00:00": write that instead')
        if self.from_ == self.to:
            raise ValueError(
                'from equals to: empty or the whole day? For a whole day write "00:00" to "24:00"'
            )
        return self

    def to_restriction(self) -> Restriction:
        """The restriction as the resolver reads it."""
        return Restriction(
            weekdays=frozenset(WEEK.index(day) for day in self.days),
            start=_clock(self.from_),
            end=_clock(self.to),
        )


class LayerSpec(Strict):
    """A rotation: ``members`` take turns, each for ``shift``, handing off at ``handoff`` local
    time, the first handoff on ``start``."""

    name: str = Field(default="", max_length=100)
    members: Annotated[tuple[Name, ...], AfterValidator(_listed)]
    shift: ShiftLength
    handoff: TimeOfDay
    time_zone: TimeZone | None = None
    start: date
    restrictions: tuple[RestrictionSpec, ...] = ()

    @model_validator(mode="after")
    def _handoff_in_day(self) -> Self:
        if self.handoff == DAY_MINUTES:
            raise ValueError('handoff "24:00" is the next day\'s "00:00": write that instead')
        return self

    def to_layer(self, default_zone: ZoneInfo, index: int) -> Layer:
        """The layer as the resolver reads it (unnamed layers are called ``layer-<n>``)."""
        return Layer(
            name=self.name or f"layer-{index + 1}",
            members=self.members,
            shift=self.shift,
            handoff=_clock(self.handoff),
            time_zone=self.time_zone or default_zone,
            start=self.start,
            restrictions=tuple(r.to_restriction() for r in self.restrictions),
        )


class OverrideSpec(Strict):
    """``person`` is on call instead of the layers from ``start`` to ``end`` (instants with a
    UTC offset, such as ``2027-03-06T09:00:00+01:00``)."""

    person: Name
    start: Instant
    end: Instant

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end is not after start: the override would never apply")
        return self


class ScheduleSpec(Strict):
    """Who is on call when: layers (later ones cover earlier ones where they have someone),
    then overrides. A schedule without layers is filled by overrides alone."""

    name: Name
    time_zone: TimeZone
    layers: tuple[LayerSpec, ...] = ()
    overrides: tuple[OverrideSpec, ...] = ()

    @property
    def people(self) -> frozenset[str]:
        """Everyone this file's schedule can put on call."""
        members = {person for layer in self.layers for person in layer.members}
        return frozenset(members | {override.person for override in self.overrides})

    def to_schedule(self) -> Schedule:
        """The schedule as the resolver reads it."""
        return Schedule(
            name=self.name,
            time_zone=self.time_zone,
            layers=tuple(
                layer.to_layer(self.time_zone, index) for index, layer in enumerate(self.layers)
            ),
            overrides=tuple(Override(o.person, o.start, o.end) for o in self.overrides),
        )
