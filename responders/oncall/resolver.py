"""A schedule's final shifts: layers, then overrides, as one timeline with nobody twice.

The timeline is painted bottom up, like PagerDuty's layers: each layer's shifts are laid over
what is already there, so a later layer covers an earlier one wherever it has someone (outside
its restriction windows, or before its start, the earlier layer shows through). Then the
schedule's file overrides are laid on, then the overrides passed in (the stored ones), each
later one covering the earlier: a stored override wins over a file override, the later of two
stored ones wins where they overlap. An override replaces whoever the layers say for its
interval, no matter who that was.

Adjacent shifts of one person are merged, so a shift's start and end are real handoffs (or the
window's edges). The result is sorted and non-overlapping; what it does not cover is a gap.
Instants are in UTC. Cost grows with the window's length, not with the schedule's age.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from responders.oncall.model import Gap, Override, Schedule, Shift
from responders.oncall.rotation import layer_shifts

HORIZON = timedelta(weeks=8)
"""How far :func:`next_handoffs` looks ahead (and back, for the current shift's start)."""

_INSTANT = timedelta(microseconds=1)


def final_shifts(
    schedule: Schedule, start: datetime, end: datetime, overrides: Sequence[Override] = ()
) -> list[Shift]:
    """Who is on call in [``start``, ``end``): sorted, non-overlapping, clipped to the window,
    each shift naming ``schedule``."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    timeline: list[Shift] = []
    if start >= end:
        return timeline
    for layer in schedule.layers:
        for shift in layer_shifts(layer, start, end):
            _paint(timeline, shift)
    for override in (*schedule.overrides, *overrides):
        _paint(timeline, _clipped(override, start, end))
    return [replace(shift, schedule=schedule.name) for shift in _merged(timeline)]


def on_call_at(schedule: Schedule, at: datetime, overrides: Sequence[Override] = ()) -> str | None:
    """Who is on call at ``at``, or None when nobody is."""
    shifts = final_shifts(schedule, at, at + _INSTANT, overrides)
    return shifts[0].person if shifts else None


def gaps(
    schedule: Schedule, start: datetime, end: datetime, overrides: Sequence[Override] = ()
) -> list[Gap]:
    """The parts of [``start``, ``end``) with nobody on call, sorted."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    found = []
    covered_until = start
    for shift in final_shifts(schedule, start, end, overrides):
        if shift.start > covered_until:
            found.append(Gap(covered_until, shift.start))
        covered_until = shift.end
    if covered_until < end:
        found.append(Gap(covered_until, end))
    return found


def next_handoffs(
    schedule: Schedule, at: datetime, count: int, overrides: Sequence[Override] = ()
) -> list[Shift]:
    """The shift on call at ``at`` (if any) and the ones after it, ``count`` in all.

    Shifts are looked for up to :data:`HORIZON` ahead; the last one found may be cut there.
    The current shift keeps its real start, looked for up to :data:`HORIZON` back.
    """
    if count <= 0:
        return []
    shifts = final_shifts(schedule, at - HORIZON, at + HORIZON, overrides)
    return [shift for shift in shifts if shift.end > at][:count]


def _paint(timeline: list[Shift], top: Shift) -> None:
    """Lay ``top`` over ``timeline`` (sorted, non-overlapping), cutting away what it covers."""
    if top.start >= top.end:
        return
    first = bisect_right(timeline, top.start, key=lambda shift: shift.end)
    after = bisect_left(timeline, top.end, key=lambda shift: shift.start)
    covered = timeline[first:after]
    pieces = [top]
    if covered and covered[0].start < top.start:
        pieces.insert(0, replace(covered[0], end=top.start))
    if covered and covered[-1].end > top.end:
        pieces.append(replace(covered[-1], start=top.end))
    timeline[first:after] = pieces


def _clipped(override: Override, start: datetime, end: datetime) -> Shift:
    return Shift(
        override.person,
        max(override.start.astimezone(UTC), start),
        min(override.end.astimezone(UTC), end),
    )


def _merged(shifts: Iterable[Shift]) -> list[Shift]:
    """Adjacent shifts of one person as one."""
    merged: list[Shift] = []
    for shift in shifts:
        if merged and merged[-1].person == shift.person and merged[-1].end == shift.start:
            merged[-1] = replace(merged[-1], end=shift.end)
        else:
            merged.append(shift)
    return merged
