"""Silences and maintenance windows from rule files: while one is active, incidents are still
opened and recorded, but nobody is paged and no customer notice goes out.

Both kinds cover rule names and/or Alertmanager label matchers and must say why (``comment``). A
silence is one-off, between two instants written with an offset. A maintenance window recurs on
the wall clock of an IANA zone, as Alertmanager time intervals do, with these decisions:

* ``end`` before ``start`` crosses midnight (23:00-02:00); ``end: "24:00"`` runs to midnight;
* an occurrence belongs to the day it STARTS: ``[friday]`` 23:00-02:00 is Friday 23:00 to Saturday
  02:00 (Alertmanager cannot cross midnight; its friday 23:00-24:00 + saturday 00:00-02:00 is the
  same time);
* weekday ranges are cyclic, Monday first: ``friday:monday`` is four days; every range
  Alertmanager accepts (Sunday first, ascending) names the same days here;
* spring forward: a skipped clock time means the moment of the jump, so Europe/Berlin 02:00-03:00
  does not happen that night and 01:00-03:00 lasts one real hour;
* fall back: an occurrence is one unbroken stretch, from the first moment the clock reads
  ``start`` (or later) to the last moment it reads earlier than ``end``. So 01:00-03:00 lasts three
  real hours, 01:00-02:30 lasts until the second 02:30 (no page slips out when the clock shows
  02:10 again) and 01:00-02:00 ends at the first 02:00 (the repeat starts at 02:00).

Pure: no I/O; callers pass ``now`` (aware).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from detector.ruleset.channel_specs import Name, Strict
from detector.ruleset.matchers import matches_all
from detector.ruleset.schema import MatcherField

_T = TypeVar("_T")
DAY_MINUTES = 24 * 60
_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")


class Weekday(StrEnum):
    """A day of the week as written in files (lowercase English, as in Alertmanager)."""

    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


WEEK = tuple(Weekday)
"""Monday first, so ``WEEK[d.weekday()]`` is the weekday of date ``d``."""


def _aware(value: datetime) -> datetime:
    """Reject naive instants: guessing the server's zone would move the silence by hours."""
    if value.utcoffset() is None:
        raise ValueError(
            f"{value.isoformat()} has no UTC offset: add one, like 2024-05-01T02:00:00+01:00 or Z"
        )
    return value


def _zone(value: object) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name like Europe/Berlin or UTC"
        ) from None


def _clock(value: object) -> int:
    """``"HH:MM"`` to minutes after midnight."""
    if isinstance(value, str) and _CLOCK.fullmatch(value):
        hours, minutes = value.split(":")
        return int(hours) * 60 + int(minutes)
    # YAML 1.1 reads an unquoted 23:00 as the base-60 number 1380: say so, do not guess.
    hint = "; unquoted, YAML reads 23:00 as the number 1380" if isinstance(value, int) else ""
    raise ValueError(f'invalid time {value!r}: write "HH:MM" in quotes, "00:00" to "24:00"{hint}')


def _weekdays(value: object) -> object:
    """Expand ranges such as ``monday:friday`` into days, Monday first, without repeats."""
    if not isinstance(value, list | tuple):
        return value  # pydantic reports "Input should be a valid tuple"
    days = {day for item in value for day in _weekday_range(str(item))}
    return tuple(day for day in WEEK if day in days)


def _weekday_range(text: str) -> list[Weekday]:
    first, colon, last = text.partition(":")
    start = WEEK.index(_weekday(first))
    stop = WEEK.index(_weekday(last)) if colon else start
    return [WEEK[(start + offset) % 7] for offset in range((stop - start) % 7 + 1)]


def _weekday(text: str) -> Weekday:
    """A full weekday name or its first three (or more) letters, as people write them."""
    word = text.strip().lower()
    for day in WEEK:
        if word == day.value or (len(word) >= 3 and day.value.startswith(word)):
            return day
    close = difflib.get_close_matches(word, [day.value for day in WEEK], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown weekday {word!r}{hint}: use mon..sun, monday..sunday or ranges like mon:fri"
    )


def _not_empty(value: tuple[_T, ...]) -> tuple[_T, ...]:
    """Like ``min_length=1``, but silent when an item already failed: one error per mistake."""
    if not value:
        raise ValueError("empty list: list at least one or leave the key out")
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("say why: the change, the ticket or who asked")
    return value


Instant = Annotated[datetime, AfterValidator(_aware)]
Comment = Annotated[str, AfterValidator(_non_blank)]
TimeZone = Annotated[
    ZoneInfo,
    BeforeValidator(_zone),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["Europe/Berlin"]}),
]
TimeOfDay = Annotated[
    int,
    BeforeValidator(_clock),
    PlainSerializer(lambda minutes: f"{minutes // 60:02d}:{minutes % 60:02d}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": _CLOCK.pattern, "examples": ["23:00"]}),
]
"""Minutes after local midnight, 0 to 1440, written ``"HH:MM"``."""
Weekdays = Annotated[
    tuple[Weekday, ...],
    BeforeValidator(_weekdays),
    WithJsonSchema({"type": "array", "items": {"type": "string", "examples": ["monday:friday"]}}),
]


def _silence_problem(starts_at: datetime, ends_at: datetime) -> str | None:
    if ends_at <= starts_at:
        return "ends_at is not after starts_at: the window can never be active"
    return None


def _clock_problem(start: int, end: int) -> str | None:
    if start == DAY_MINUTES:
        return 'start "24:00" is the next day\'s "00:00": write that instead'
    if start == end:
        return 'start equals end: never or always active? For a whole day write "00:00"-"24:00"'
    return None


class PublicMaintenanceSpec(Strict):
    """How the status page announces a silence or window as scheduled maintenance: in the
    customers' words, naming the components they will see under maintenance while it runs."""

    title: Annotated[str, AfterValidator(_non_blank)]
    message: str = ""
    components: Annotated[tuple[Name, ...], AfterValidator(_not_empty)]


class _Scope(Strict):
    """What a silence or window covers: listed rules, matching labels, or both at once."""

    name: Name
    match: Annotated[tuple[MatcherField, ...], AfterValidator(_not_empty)] = ()
    rules: Annotated[tuple[Name, ...], AfterValidator(_not_empty)] = ()
    comment: Comment
    public: PublicMaintenanceSpec | None = None

    @model_validator(mode="after")
    def _scoped(self) -> Self:
        if not self.match and not self.rules:
            raise ValueError("set match, rules or both: say which incidents this silences")
        return self

    def applies_to(self, rule_name: str, labels: Mapping[str, str]) -> bool:
        """Whether an incident of ``rule_name`` with ``labels`` is covered (both when both set)."""
        if self.rules and rule_name not in self.rules:
            return False
        return matches_all(self.match, labels)


class SilenceSpec(_Scope):
    """A one-off silence, active from ``starts_at`` (inclusive) to ``ends_at`` (exclusive)."""

    starts_at: Instant
    ends_at: Instant
    created_by: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if problem := _silence_problem(self.starts_at, self.ends_at):
            raise ValueError(problem)
        return self

    def active_until(self, now: datetime) -> datetime | None:
        """When the silence ends (UTC) if it is active at ``now``, else None."""
        return self.ends_at.astimezone(UTC) if self.starts_at <= now < self.ends_at else None


class MaintenanceWindowSpec(_Scope):
    """A recurring window on the wall clock of ``location``; see the module docstring for DST."""

    location: TimeZone
    weekdays: Weekdays = WEEK
    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _sane_times(self) -> Self:
        if problem := _clock_problem(self.start, self.end):
            raise ValueError(problem)
        return self

    def active_until(self, now: datetime) -> datetime | None:
        """When the occurrence running at ``now`` ends (UTC), or None if none is running.

        Only occurrences starting today or yesterday (local) can contain ``now``; both are tried
        because around a fall-back night they can overlap, and the later end wins.
        """
        today = now.astimezone(self.location).date()
        ends: list[datetime] = []
        for day in (today - timedelta(days=1), today):
            if WEEK[day.weekday()] in self.weekdays:
                start, end = self.occurrence(day)
                if start <= now < end:
                    ends.append(end)
        return max(ends, default=None)

    def occurrence(self, day: date) -> tuple[datetime, datetime]:
        """The UTC start and end of the occurrence that starts on local ``day``."""
        end_day = day + timedelta(days=1) if self.end < self.start else day
        return (
            _instant(day, self.start, self.location, last=False),
            _instant(end_day, self.end, self.location, last=True),
        )


def _instant(day: date, minutes: int, zone: ZoneInfo, *, last: bool) -> datetime:
    """The UTC instant the clock in ``zone`` first reads ``minutes`` past midnight on ``day``
    or later; with ``last``, the last instant it still reads earlier than that.

    The two differ only on a fall-back night: "earlier" readings come again in the repeated hour.
    A skipped reading gives the jump either way.
    """
    wall = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minutes)
    first = wall.replace(fold=0).astimezone(UTC)
    second = wall.replace(fold=1).astimezone(UTC)
    if first > second:  # skipped: fold=1 reads it with the new offset, fold=0 with the old one
        return _jump(second, first, zone)
    if not last or first == second:
        return first
    # Repeated: earlier readings recur unless ``wall`` is where the repeat begins (then the clock
    # read later than ``wall`` just before its second reading).
    just_before = (second - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    return second if just_before < wall.replace(tzinfo=None) else first


def _jump(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first second with ``after``'s offset; zoneinfo keeps its transitions private."""
    low, high = int(before.timestamp()), int(after.timestamp())
    new_offset = after.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True, slots=True)
class ActiveWindow:
    """The silence or window holding pages back, and until when (UTC) to defer them."""

    name: str
    until: datetime


def active_window(
    windows: Iterable[SilenceSpec | MaintenanceWindowSpec],
    rule_name: str,
    labels: Mapping[str, str],
    now: datetime,
) -> ActiveWindow | None:
    """The applying window active at ``now`` that ends last, or None: page now."""
    found: ActiveWindow | None = None
    for window in windows:
        until = window.active_until(now) if window.applies_to(rule_name, labels) else None
        if until is not None and (found is None or until > found.until):
            found = ActiveWindow(window.name, until)
    return found


def never_active(spec: SilenceSpec | MaintenanceWindowSpec, now: datetime) -> str | None:
    """Why ``spec`` can never be active, for the loader's cross-checks; None when it can.

    A silence that ended before ``now`` is merely expired, not an error: files lag behind the
    clock and failing a reload over yesterday's silence would block today's fix.
    """
    if isinstance(spec, SilenceSpec):
        return _silence_problem(spec.starts_at, spec.ends_at)
    if not spec.weekdays:
        return "weekdays is empty: the window can never be active"
    return _clock_problem(spec.start, spec.end)
