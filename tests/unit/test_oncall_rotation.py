"""One layer's shifts as tables: handoffs across DST changes in Berlin and New York, the skipped
and the repeated hour, rotations started long ago, and restriction windows.

The expected UTC instants are worked out by hand from the zones' rules: Europe/Berlin springs
forward on 2027-03-28 (02:00 CET -> 03:00 CEST, at 01:00 UTC) and falls back on 2027-10-31
(03:00 CEST -> 02:00 CET, at 01:00 UTC); America/New_York springs forward on 2027-03-14 (02:00
EST -> 03:00 EDT, at 07:00 UTC) and falls back on 2027-11-07 (02:00 EDT -> 01:00 EST, at
06:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from responders.oncall.model import Layer, Restriction
from responders.oncall.rotation import handoff_at, handoff_index, layer_shifts

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def utc(month: int, day: int, hour: int, minute: int = 0, year: int = 2027) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def rotation(
    zone: ZoneInfo,
    shift: timedelta,
    handoff: time,
    start: date,
    members: tuple[str, ...] = ("ann", "bob"),
    restrictions: tuple[Restriction, ...] = (),
) -> Layer:
    return Layer("primary", members, shift, handoff, zone, start, restrictions)


BERLIN_SPRING = rotation(BERLIN, DAY, time(2, 30), date(2027, 3, 27))
BERLIN_AUTUMN = rotation(BERLIN, DAY, time(2, 30), date(2027, 10, 30))
NEW_YORK_SPRING = rotation(NEW_YORK, DAY, time(2, 30), date(2027, 3, 13))
NEW_YORK_AUTUMN = rotation(NEW_YORK, DAY, time(1, 30), date(2027, 11, 6))

# (layer, window, expected shifts as (person, UTC start, hours))
DST_SHIFTS = [
    pytest.param(
        BERLIN_SPRING,
        (utc(3, 27, 1, 30), utc(3, 30, 0, 30)),
        [
            ("ann", utc(3, 27, 1, 30), 24),
            ("bob", utc(3, 28, 1, 30), 23),
            ("ann", utc(3, 29, 0, 30), 24),
        ],
        id="berlin daily 02:30 on the skipped hour: 03:30 CEST, then a 23h shift",
    ),
    pytest.param(
        BERLIN_AUTUMN,
        (utc(10, 30, 0, 30), utc(11, 2, 1, 30)),
        [
            ("ann", utc(10, 30, 0, 30), 24),
            ("bob", utc(10, 31, 0, 30), 25),
            ("ann", utc(11, 1, 1, 30), 24),
        ],
        id="berlin daily 02:30 on the repeated hour: first occurrence, then a 25h shift",
    ),
    pytest.param(
        NEW_YORK_SPRING,
        (utc(3, 13, 7, 30), utc(3, 16, 6, 30)),
        [
            ("ann", utc(3, 13, 7, 30), 24),
            ("bob", utc(3, 14, 7, 30), 23),
            ("ann", utc(3, 15, 6, 30), 24),
        ],
        id="new york daily 02:30 on the skipped hour: 03:30 EDT, then a 23h shift",
    ),
    pytest.param(
        NEW_YORK_AUTUMN,
        (utc(11, 6, 5, 30), utc(11, 9, 6, 30)),
        [
            ("ann", utc(11, 6, 5, 30), 24),
            ("bob", utc(11, 7, 5, 30), 25),
            ("ann", utc(11, 8, 6, 30), 24),
        ],
        id="new york daily 01:30 on the repeated hour: first occurrence, then a 25h shift",
    ),
    pytest.param(
        rotation(BERLIN, WEEK, time(9), date(2027, 3, 22)),
        (utc(3, 22, 8), utc(4, 5, 7)),
        [("ann", utc(3, 22, 8), 167), ("bob", utc(3, 29, 7), 168)],
        id="berlin weekly monday 09:00 across spring: 167h",
    ),
    pytest.param(
        rotation(BERLIN, WEEK, time(9), date(2027, 10, 25)),
        (utc(10, 25, 7), utc(11, 8, 8)),
        [("ann", utc(10, 25, 7), 169), ("bob", utc(11, 1, 8), 168)],
        id="berlin weekly monday 09:00 across autumn: 169h",
    ),
    pytest.param(
        rotation(NEW_YORK, WEEK, time(9), date(2027, 3, 8)),
        (utc(3, 8, 14), utc(3, 22, 13)),
        [("ann", utc(3, 8, 14), 167), ("bob", utc(3, 15, 13), 168)],
        id="new york weekly monday 09:00 across spring: 167h",
    ),
    pytest.param(
        rotation(NEW_YORK, WEEK, time(9), date(2027, 11, 1)),
        (utc(11, 1, 13), utc(11, 15, 14)),
        [("ann", utc(11, 1, 13), 169), ("bob", utc(11, 8, 14), 168)],
        id="new york weekly monday 09:00 across autumn: 169h",
    ),
    pytest.param(
        rotation(BERLIN, 12 * HOUR, time(9), date(2027, 3, 27)),
        (utc(3, 27, 8), utc(3, 29, 7)),
        [
            ("ann", utc(3, 27, 8), 12),
            ("bob", utc(3, 27, 20), 11),
            ("ann", utc(3, 28, 7), 12),
            ("bob", utc(3, 28, 19), 12),
        ],
        id="berlin 12h at 09:00 and 21:00 local: the night of the spring change is 11h",
    ),
    pytest.param(
        rotation(BERLIN, 12 * HOUR, time(9), date(2027, 10, 30)),
        (utc(10, 30, 7), utc(11, 1, 8)),
        [
            ("ann", utc(10, 30, 7), 12),
            ("bob", utc(10, 30, 19), 13),
            ("ann", utc(10, 31, 8), 12),
            ("bob", utc(10, 31, 20), 12),
        ],
        id="berlin 12h at 09:00 and 21:00 local: the night of the autumn change is 13h",
    ),
    pytest.param(
        rotation(NEW_YORK, 12 * HOUR, time(9), date(2027, 3, 13)),
        (utc(3, 13, 14), utc(3, 15, 13)),
        [
            ("ann", utc(3, 13, 14), 12),
            ("bob", utc(3, 14, 2), 11),
            ("ann", utc(3, 14, 13), 12),
            ("bob", utc(3, 15, 1), 12),
        ],
        id="new york 12h across spring: 11h night",
    ),
    pytest.param(
        rotation(NEW_YORK, 12 * HOUR, time(9), date(2027, 11, 6)),
        (utc(11, 6, 13), utc(11, 8, 14)),
        [
            ("ann", utc(11, 6, 13), 12),
            ("bob", utc(11, 7, 1), 13),
            ("ann", utc(11, 7, 14), 12),
            ("bob", utc(11, 8, 2), 12),
        ],
        id="new york 12h across autumn: 13h night",
    ),
    pytest.param(
        rotation(BERLIN, HOUR, time(0), date(2027, 3, 28), ("ann", "bob", "cy")),
        (utc(3, 27, 23), utc(3, 28, 3)),
        [
            ("ann", utc(3, 27, 23), 1),
            ("bob", utc(3, 28, 0), 1),
            ("ann", utc(3, 28, 1), 1),
            ("bob", utc(3, 28, 2), 1),
        ],
        id="berlin hourly: the skipped 02:00 shift lasts no time and cy's turn is lost",
    ),
    pytest.param(
        rotation(BERLIN, HOUR, time(0), date(2027, 10, 31), ("ann", "bob", "cy")),
        (utc(10, 30, 22), utc(10, 31, 3)),
        [
            ("ann", utc(10, 30, 22), 1),
            ("bob", utc(10, 30, 23), 1),
            ("cy", utc(10, 31, 0), 2),
            ("ann", utc(10, 31, 2), 1),
        ],
        id="berlin hourly: the 02:00 shift holds the repeated hour, 2h",
    ),
]


@pytest.mark.parametrize(("layer", "window", "expected"), DST_SHIFTS)
def test_handoffs_keep_local_time_across_dst(
    layer: Layer, window: tuple[datetime, datetime], expected: list[tuple[str, datetime, int]]
) -> None:
    shifts = layer_shifts(layer, *window)

    assert [(s.person, s.start, (s.end - s.start) / HOUR) for s in shifts] == expected
    assert all(s.start.tzinfo is UTC and s.end.tzinfo is UTC for s in shifts)


@pytest.mark.parametrize(
    ("layer", "at", "expected"),
    [
        pytest.param(BERLIN_SPRING, utc(3, 28, 1, 29), 0, id="berlin: before 03:30 CEST"),
        pytest.param(BERLIN_SPRING, utc(3, 28, 1, 30), 1, id="berlin: at 03:30 CEST"),
        pytest.param(BERLIN_SPRING, utc(3, 29, 0, 29), 1, id="berlin: end of the 23h"),
        pytest.param(BERLIN_SPRING, utc(3, 29, 0, 30), 2, id="berlin: 02:30 CEST"),
        pytest.param(BERLIN_AUTUMN, utc(10, 31, 0, 29), 0, id="berlin: before 02:30 CEST"),
        pytest.param(BERLIN_AUTUMN, utc(10, 31, 0, 30), 1, id="berlin: first 02:30"),
        pytest.param(BERLIN_AUTUMN, utc(10, 31, 1, 30), 1, id="berlin: second 02:30"),
        pytest.param(BERLIN_AUTUMN, utc(11, 1, 1, 30), 2, id="berlin: 02:30 CET"),
        pytest.param(NEW_YORK_SPRING, utc(3, 14, 7, 29), 0, id="new york: before 03:30 EDT"),
        pytest.param(NEW_YORK_SPRING, utc(3, 14, 7, 30), 1, id="new york: at 03:30 EDT"),
        pytest.param(NEW_YORK_SPRING, utc(3, 15, 6, 30), 2, id="new york: 02:30 EDT"),
        pytest.param(NEW_YORK_AUTUMN, utc(11, 7, 5, 30), 1, id="new york: first 01:30"),
        pytest.param(NEW_YORK_AUTUMN, utc(11, 7, 6, 30), 1, id="new york: second 01:30"),
        pytest.param(NEW_YORK_AUTUMN, utc(11, 8, 6, 29), 1, id="new york: end of the 25h"),
        pytest.param(BERLIN_SPRING, utc(3, 27, 1, 29), -1, id="before the first"),
        pytest.param(
            BERLIN_AUTUMN,
            datetime(2027, 10, 31, 2, 30, tzinfo=BERLIN, fold=1),
            1,
            id="a local instant in the repeated hour, fold=1",
        ),
    ],
)
def test_handoff_index(layer: Layer, at: datetime, expected: int) -> None:
    index = handoff_index(layer, at)

    assert index == expected
    assert handoff_at(layer, index) <= at < handoff_at(layer, index + 1)


@pytest.mark.parametrize(
    ("zone", "start", "at"),
    [
        pytest.param(NEW_YORK, date(1900, 1, 1), utc(1, 1, 15), id="started in 1900"),
        pytest.param(BERLIN, date(1950, 6, 1), utc(7, 15, 7), id="started in 1950"),
        pytest.param(BERLIN, date(2027, 7, 14), utc(7, 15, 7), id="started yesterday"),
    ],
)
def test_a_rotation_started_long_ago_counts_calendar_days(
    zone: ZoneInfo, start: date, at: datetime
) -> None:
    layer = rotation(zone, DAY, time(9), start, ("ann", "bob", "cy"))
    days = (at.astimezone(zone).date() - start).days  # `at` is after 09:00 local

    (shift,) = layer_shifts(layer, at, at + HOUR)

    assert handoff_index(layer, at) == days
    assert shift.person == layer.members[days % 3]


def test_before_its_start_a_layer_has_nobody() -> None:
    layer = rotation(BERLIN, DAY, time(9), date(2027, 6, 7))

    shifts = layer_shifts(layer, utc(6, 6, 0), utc(6, 8, 0))

    assert [(s.person, s.start, s.end) for s in shifts] == [
        ("ann", utc(6, 7, 7), utc(6, 8, 0)),
    ]


@pytest.mark.parametrize(
    ("layer", "window", "expected"),
    [
        pytest.param(
            rotation(
                BERLIN,
                WEEK,
                time(0),
                date(2027, 6, 7),
                ("ann",),
                (Restriction(WEEKDAYS, time(9), time(17)),),
            ),
            (utc(6, 6, 0), utc(6, 14, 0)),
            [("ann", utc(6, d, 7), utc(6, d, 15)) for d in range(7, 12)],
            id="weekdays 09-17 local",
        ),
        pytest.param(
            rotation(
                BERLIN,
                DAY,
                time(12),
                date(2027, 6, 6),
                ("ann", "bob"),
                (Restriction(frozenset({0}), time(9), time(17)),),
            ),
            (utc(6, 7, 0), utc(6, 14, 0)),
            [("ann", utc(6, 7, 7), utc(6, 7, 10)), ("bob", utc(6, 7, 10), utc(6, 7, 15))],
            id="a handoff inside the window splits it",
        ),
        pytest.param(
            rotation(
                BERLIN,
                WEEK,
                time(0),
                date(2027, 6, 7),
                ("ann",),
                (Restriction(frozenset({4}), time(22), time(6)),),
            ),
            (utc(6, 7, 0), utc(6, 14, 0)),
            [("ann", utc(6, 11, 20), utc(6, 12, 4))],
            id="overnight friday 22-06 ends on saturday",
        ),
        pytest.param(
            rotation(
                BERLIN,
                WEEK,
                time(0),
                date(2027, 3, 22),
                ("ann",),
                (Restriction(frozenset({5}), time(22), time(6)),),
            ),
            (utc(3, 22, 0), utc(3, 29, 0)),
            [("ann", utc(3, 27, 21), utc(3, 28, 4))],
            id="overnight across the spring change is 7h",
        ),
        pytest.param(
            rotation(
                BERLIN,
                WEEK,
                time(0),
                date(2027, 6, 7),
                ("ann",),
                (Restriction(frozenset({4}), time(22), time(6)),),
            ),
            (utc(6, 12, 1), utc(6, 12, 2)),
            [("ann", utc(6, 12, 1), utc(6, 12, 2))],
            id="yesterday's overnight window covers the early hours",
        ),
        pytest.param(
            rotation(
                BERLIN,
                WEEK,
                time(0),
                date(2027, 6, 7),
                ("ann",),
                (
                    Restriction(frozenset({0}), time(9), time(17)),
                    Restriction(frozenset({0}), time(12), time(20)),
                    Restriction(frozenset({1}), time(20), time(0)),
                ),
            ),
            (utc(6, 7, 0), utc(6, 14, 0)),
            [("ann", utc(6, 7, 7), utc(6, 7, 18)), ("ann", utc(6, 8, 18), utc(6, 8, 22))],
            id="overlapping windows merge, an end at midnight",
        ),
        pytest.param(
            rotation(
                NEW_YORK,
                DAY,
                time(9),
                date(2027, 6, 7),
                ("ann", "bob"),
                (Restriction(EVERY_DAY, time(0), time(0)),),
            ),
            (utc(6, 7, 13), utc(6, 9, 13)),
            [("ann", utc(6, 7, 13), utc(6, 8, 13)), ("bob", utc(6, 8, 13), utc(6, 9, 13))],
            id="00:00-00:00 every day is the whole day",
        ),
    ],
)
def test_restrictions(
    layer: Layer, window: tuple[datetime, datetime], expected: list[tuple[str, datetime, datetime]]
) -> None:
    shifts = layer_shifts(layer, *window)

    assert [(s.person, s.start, s.end) for s in shifts] == expected


def test_no_members_no_shifts() -> None:
    layer = rotation(BERLIN, DAY, time(9), date(2027, 1, 1), members=())

    assert layer_shifts(layer, utc(6, 1, 0), utc(6, 8, 0)) == []


def test_an_empty_window_has_no_shifts() -> None:
    layer = rotation(BERLIN, DAY, time(9), date(2027, 1, 1))

    assert layer_shifts(layer, utc(6, 1, 0), utc(6, 1, 0)) == []


@pytest.mark.parametrize(
    "shift",
    [
        pytest.param(timedelta(minutes=30), id="half an hour"),
        pytest.param(timedelta(0), id="zero"),
        pytest.param(-DAY, id="negative"),
    ],
)
def test_a_shift_must_be_whole_hours(shift: timedelta) -> None:
    layer = rotation(BERLIN, shift, time(9), date(2027, 1, 1))

    with pytest.raises(ValueError, match="primary: shift must be a positive whole number of hours"):
        layer_shifts(layer, utc(6, 1, 0), utc(6, 8, 0))
