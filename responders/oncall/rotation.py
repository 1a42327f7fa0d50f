"""One layer's shifts: who its rotation puts on call, and when, in pure arithmetic.

Handoffs keep their local wall-clock time. Handoff ``k`` is at ``layer.start`` + ``handoff``
plus ``k`` times ``shift`` of *local wall-clock* time, so a daily 09:00 handoff stays at 09:00
across DST and a 12-hour rotation hands off at 09:00 and 21:00, one of its shifts lasting 11 or
13 hours on a change day. Member ``k mod len(members)`` holds the shift that handoff opens.

A local time that does not exist (the hour skipped in spring) is read with ``fold=0``, as
zoneinfo does: 02:30 in Europe/Berlin on 2027-03-28 is 03:30 CEST. A repeated local time (the
hour played twice in autumn) is its first occurrence. A shift the change swallows whole (an
hourly rotation's 02:00 in spring) lasts no time and is left out; its member's turn is lost.

The handoff before an instant is found arithmetically from the wall-clock time elapsed since
the start, never by stepping through history, so a rotation started years ago costs what a new
one does. Before its first handoff a layer has nobody.

Restrictions limit the hours a layer covers: each is a weekday and a local start and end time
in the layer's zone, the weekday being the one the window starts on (an end at or before the
start runs past midnight, so ``fri 22:00-06:00`` ends on Saturday morning). A layer with
restrictions has someone only inside their union; elsewhere lower layers show through.

Every instant returned is in UTC: aware datetimes sharing a zone compare by wall-clock time,
ignoring ``fold``, which is wrong for the repeated hour.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from responders.oncall.model import Layer, Restriction, Shift

HOUR = timedelta(hours=1)

Window = tuple[datetime, datetime]
"""A UTC interval, end exclusive."""


def layer_shifts(layer: Layer, start: datetime, end: datetime) -> list[Shift]:
    """The layer's shifts overlapping [``start``, ``end``), clipped to it, restrictions applied:
    one per handoff (adjacent shifts of one person are not merged here), sorted by start."""
    _check_shift(layer)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start >= end or not layer.members:
        return []
    shifts = []
    index = max(handoff_index(layer, start), 0)
    opens = handoff_at(layer, index)
    while opens < end:
        closes = handoff_at(layer, index + 1)
        piece = (max(opens, start), min(closes, end))
        if piece[0] < piece[1]:
            shifts.append(Shift(layer.members[index % len(layer.members)], *piece))
        index, opens = index + 1, max(closes, opens)
    if not layer.restrictions:
        return shifts
    return _within(shifts, restriction_windows(layer, start, end))


def handoff_at(layer: Layer, index: int) -> datetime:
    """The UTC instant of handoff ``index`` (0: the first, on ``layer.start``)."""
    first = datetime.combine(layer.start, layer.handoff)
    return _instant(first + index * layer.shift, layer.time_zone)


def handoff_index(layer: Layer, at: datetime) -> int:
    """The number of the last handoff at or before ``at`` (negative before the first).

    The wall-clock time since the first handoff gives it up to a DST change; the two loops
    correct that by at most a step or two, so the cost does not depend on the rotation's age.
    """
    _check_shift(layer)
    at = at.astimezone(UTC)
    local = at.astimezone(layer.time_zone).replace(tzinfo=None)
    index = (local - datetime.combine(layer.start, layer.handoff)) // layer.shift
    while handoff_at(layer, index) > at:
        index -= 1
    while handoff_at(layer, index + 1) <= at:
        index += 1
    return index


def restriction_windows(layer: Layer, start: datetime, end: datetime) -> list[Window]:
    """The UTC windows in which the layer's restrictions let it cover [``start``, ``end``),
    clipped to it, merged where they overlap or touch, sorted."""
    zone = layer.time_zone
    first = start.astimezone(zone).date() - timedelta(days=1)  # yesterday's overnight window
    count = (end.astimezone(zone).date() - first).days + 1
    days = [first + timedelta(days=n) for n in range(count)]
    windows = sorted(
        _window(day, restriction, zone)
        for day in days
        for restriction in layer.restrictions
        if day.weekday() in restriction.weekdays
    )
    merged: list[Window] = []
    for opens, closes in windows:
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        elif opens < closes:
            merged.append((opens, closes))
    return [(max(o, start), min(c, end)) for o, c in merged if o < end and c > start]


def _window(day: date, restriction: Restriction, zone: ZoneInfo) -> Window:
    overnight = restriction.end <= restriction.start
    closes_on = day + timedelta(days=1) if overnight else day
    return (
        _instant(datetime.combine(day, restriction.start), zone),
        _instant(datetime.combine(closes_on, restriction.end), zone),
    )


def _within(shifts: list[Shift], windows: list[Window]) -> list[Shift]:
    """The parts of ``shifts`` inside ``windows`` (both sorted and non-overlapping)."""
    kept = []
    for shift in shifts:
        at = bisect_right(windows, shift.start, key=lambda window: window[1])
        while at < len(windows) and windows[at][0] < shift.end:
            opens, closes = windows[at]
            kept.append(Shift(shift.person, max(shift.start, opens), min(shift.end, closes)))
            at += 1
    return kept


def _instant(local: datetime, zone: ZoneInfo) -> datetime:
    """A naive local wall-clock time in ``zone`` as a UTC instant (fold=0: a skipped time moves
    past the gap, a repeated one is its first occurrence)."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _check_shift(layer: Layer) -> None:
    if layer.shift <= timedelta(0) or layer.shift % HOUR:
        raise ValueError(f"layer {layer.name}: shift must be a positive whole number of hours")
