"""A schedule's final shifts: layers covering each other only where they have someone, file and
stored overrides, gaps, the next handoffs, and a property over random rotations."""

from __future__ import annotations

import operator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responders.oncall.model import Gap, Layer, Override, Restriction, Schedule, Shift
from responders.oncall.resolver import HORIZON, final_shifts, gaps, next_handoffs, on_call_at

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
OFFICE_HOURS = Restriction(frozenset(range(5)), time(9), time(17))


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, month, day, hour, minute, tzinfo=UTC)


def layer(
    members: tuple[str, ...],
    shift: timedelta = WEEK,
    start: date = date(2027, 6, 7),
    restrictions: tuple[Restriction, ...] = (),
    handoff: time = time(9),
) -> Layer:
    return Layer("layer", members, shift, handoff, BERLIN, start, restrictions)


def schedule(*layers: Layer, overrides: tuple[Override, ...] = ()) -> Schedule:
    return Schedule("primary", BERLIN, layers, overrides)


def table(shifts: list[Shift]) -> list[tuple[str, datetime, datetime]]:
    return [(s.person, s.start, s.end) for s in shifts]


# Weekly ann/bob from Monday 2027-06-07 09:00 CEST (07:00 UTC).
BASE = layer(("ann", "bob"))
# The week of 2027-06-07: Monday 09:00 CEST to the next Monday 09:00 CEST.
WEEK_ONE = (utc(6, 7, 7), utc(6, 14, 7))


@pytest.mark.parametrize(
    ("layers", "window", "expected"),
    [
        pytest.param(
            (BASE, layer(("dan",), restrictions=(OFFICE_HOURS,))),
            (utc(6, 7, 7), utc(6, 9, 7)),
            [
                ("dan", utc(6, 7, 7), utc(6, 7, 15)),
                ("ann", utc(6, 7, 15), utc(6, 8, 7)),
                ("dan", utc(6, 8, 7), utc(6, 8, 15)),
                ("ann", utc(6, 8, 15), utc(6, 9, 7)),
            ],
            id="an office-hours layer covers the base only in its windows",
        ),
        pytest.param(
            (BASE, layer(("dan",), shift=DAY, start=date(2027, 6, 10))),
            WEEK_ONE,
            [("ann", utc(6, 7, 7), utc(6, 10, 7)), ("dan", utc(6, 10, 7), utc(6, 14, 7))],
            id="before its start a later layer lets the earlier one show",
        ),
        pytest.param(
            (BASE, layer(())),
            WEEK_ONE,
            [("ann", *WEEK_ONE)],
            id="a later layer without members covers nothing",
        ),
        pytest.param(
            (layer(("dan",), restrictions=(OFFICE_HOURS,)), BASE),
            WEEK_ONE,
            [("ann", *WEEK_ONE)],
            id="order matters: the unrestricted layer on top covers all",
        ),
        pytest.param(
            (BASE, layer(("ann", "cy"), shift=DAY, restrictions=(OFFICE_HOURS,))),
            (utc(6, 7, 7), utc(6, 8, 20)),
            [
                ("ann", utc(6, 7, 7), utc(6, 8, 7)),
                ("cy", utc(6, 8, 7), utc(6, 8, 15)),
                ("ann", utc(6, 8, 15), utc(6, 8, 20)),
            ],
            id="the same person on two layers is one shift",
        ),
        pytest.param((), WEEK_ONE, [], id="no layers, nobody"),
    ],
)
def test_layers(
    layers: tuple[Layer, ...],
    window: tuple[datetime, datetime],
    expected: list[tuple[str, datetime, datetime]],
) -> None:
    assert table(final_shifts(schedule(*layers), *window)) == expected


FILE_OVERRIDE = Override("eve", utc(6, 8, 10), utc(6, 8, 20))


@pytest.mark.parametrize(
    ("file_overrides", "stored", "expected"),
    [
        pytest.param(
            (FILE_OVERRIDE,),
            (),
            [
                ("ann", utc(6, 7, 7), utc(6, 8, 10)),
                ("eve", utc(6, 8, 10), utc(6, 8, 20)),
                ("ann", utc(6, 8, 20), utc(6, 14, 7)),
            ],
            id="a file override replaces the layer",
        ),
        pytest.param(
            (FILE_OVERRIDE,),
            (Override("fay", utc(6, 8, 12), utc(6, 8, 14), created_by="ann", id=7),),
            [
                ("ann", utc(6, 7, 7), utc(6, 8, 10)),
                ("eve", utc(6, 8, 10), utc(6, 8, 12)),
                ("fay", utc(6, 8, 12), utc(6, 8, 14)),
                ("eve", utc(6, 8, 14), utc(6, 8, 20)),
                ("ann", utc(6, 8, 20), utc(6, 14, 7)),
            ],
            id="a stored override wins over a file override",
        ),
        pytest.param(
            (),
            (
                Override("fay", utc(6, 8, 0), utc(6, 9, 0)),
                Override("gus", utc(6, 8, 12), utc(6, 10, 0)),
            ),
            [
                ("ann", utc(6, 7, 7), utc(6, 8, 0)),
                ("fay", utc(6, 8, 0), utc(6, 8, 12)),
                ("gus", utc(6, 8, 12), utc(6, 10, 0)),
                ("ann", utc(6, 10, 0), utc(6, 14, 7)),
            ],
            id="the later stored override wins where two overlap",
        ),
        pytest.param(
            (),
            (Override("ann", utc(6, 14, 7), utc(6, 15, 0)),),
            [("ann", utc(6, 7, 7), utc(6, 14, 7))],
            id="an override outside the window is left out",
        ),
        pytest.param(
            (),
            (Override("fay", utc(6, 1, 0), utc(6, 20, 0)),),
            [("fay", *WEEK_ONE)],
            id="an override longer than the window is clipped to it",
        ),
        pytest.param(
            (),
            (
                Override("fay", utc(6, 8, 0), utc(6, 9, 0)),
                Override("fay", utc(6, 9, 0), utc(6, 9, 6)),
            ),
            [
                ("ann", utc(6, 7, 7), utc(6, 8, 0)),
                ("fay", utc(6, 8, 0), utc(6, 9, 6)),
                ("ann", utc(6, 9, 6), utc(6, 14, 7)),
            ],
            id="adjacent overrides of one person merge",
        ),
        pytest.param(
            (),
            (Override("fay", utc(6, 9, 0), utc(6, 8, 0)),),
            [("ann", *WEEK_ONE)],
            id="an override ending before it starts is ignored",
        ),
    ],
)
def test_overrides(
    file_overrides: tuple[Override, ...],
    stored: tuple[Override, ...],
    expected: list[tuple[str, datetime, datetime]],
) -> None:
    shifts = final_shifts(schedule(BASE, overrides=file_overrides), *WEEK_ONE, stored)

    assert table(shifts) == expected
    assert {s.schedule for s in shifts} == {"primary"}


def test_an_override_fills_a_gap() -> None:
    office = schedule(layer(("dan",), restrictions=(OFFICE_HOURS,)))
    night = Override("eve", utc(6, 7, 15), utc(6, 8, 7))

    assert table(final_shifts(office, utc(6, 7, 7), utc(6, 8, 15), [night])) == [
        ("dan", utc(6, 7, 7), utc(6, 7, 15)),
        ("eve", utc(6, 7, 15), utc(6, 8, 7)),
        ("dan", utc(6, 8, 7), utc(6, 8, 15)),
    ]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(utc(6, 7, 6, 59), None, id="before the first handoff"),
        pytest.param(utc(6, 7, 7), "dan", id="monday at 09:00 CEST"),
        pytest.param(utc(6, 7, 15), None, id="monday at 17:00 CEST: gap"),
        pytest.param(utc(6, 7, 18), "eve", id="monday evening: the override"),
        pytest.param(utc(6, 12, 10), None, id="saturday: gap"),
        pytest.param(datetime(2027, 6, 8, 16, 59, tzinfo=BERLIN), "dan", id="a local instant"),
    ],
)
def test_on_call_at(at: datetime, expected: str | None) -> None:
    office = schedule(layer(("dan",), restrictions=(OFFICE_HOURS,)))

    assert on_call_at(office, at, [Override("eve", utc(6, 7, 17), utc(6, 7, 19))]) == expected


def test_gaps() -> None:
    office = schedule(layer(("dan",), restrictions=(OFFICE_HOURS,)))

    assert gaps(office, utc(6, 7, 0), utc(6, 9, 0)) == [
        Gap(utc(6, 7, 0), utc(6, 7, 7)),
        Gap(utc(6, 7, 15), utc(6, 8, 7)),
        Gap(utc(6, 8, 15), utc(6, 9, 0)),
    ]
    assert gaps(schedule(BASE), *WEEK_ONE) == []
    assert gaps(schedule(), *WEEK_ONE) == [Gap(*WEEK_ONE)]


class TestNextHandoffs:
    DAILY = schedule(layer(("ann", "bob", "cy"), shift=DAY, start=date(2027, 1, 4)))

    def test_the_current_shift_keeps_its_start(self) -> None:
        shifts = next_handoffs(self.DAILY, utc(6, 9, 12), 3)

        assert [(s.person, s.start) for s in shifts] == [
            ("ann", utc(6, 9, 7)),  # 156 days after 2027-01-04, 156 % 3 == 0
            ("bob", utc(6, 10, 7)),
            ("cy", utc(6, 11, 7)),
        ]

    def test_stored_overrides_count(self) -> None:
        shifts = next_handoffs(
            self.DAILY, utc(6, 9, 12), 2, [Override("eve", utc(6, 10, 7), utc(6, 10, 9))]
        )

        assert [(s.person, s.start, s.end) for s in shifts] == [
            ("ann", utc(6, 9, 7), utc(6, 10, 7)),
            ("eve", utc(6, 10, 7), utc(6, 10, 9)),
        ]

    def test_at_most_the_horizon_ahead(self) -> None:
        alone = schedule(layer(("ann",), start=date(2027, 1, 4)))
        at = utc(6, 9, 12)

        (shift,) = next_handoffs(alone, at, 5)

        assert (shift.person, shift.start, shift.end) == ("ann", at - HORIZON, at + HORIZON)

    def test_none_asked_none_given(self) -> None:
        assert next_handoffs(self.DAILY, utc(6, 9, 12), 0) == []


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@st.composite
def gap_free_schedules(draw: st.DrawFn) -> Schedule:
    """One unrestricted layer started before 2026, in a zone with or without DST."""
    members = tuple(draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=5)))
    unit = draw(st.sampled_from([HOUR, DAY, WEEK]))
    shift = unit * draw(st.integers(min_value=1, max_value=36 if unit is HOUR else 3))
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    start = draw(st.dates(min_value=date(2015, 1, 1), max_value=date(2025, 12, 1)))
    handoff = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45])))
    return Schedule("property", zone, (Layer("only", members, shift, handoff, zone, start),))


# Days before the 2027 DST changes of the zones above (Lord Howe moves by half an hour).
CHANGES = [utc(3, 28, 0), utc(10, 31, 0), utc(3, 14, 0), utc(11, 7, 0), utc(4, 3, 0), utc(10, 2, 0)]
INSTANTS = st.one_of(
    st.datetimes(  # naive bounds are how Hypothesis takes them; the zone comes after
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001
        max_value=datetime(2028, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    st.builds(operator.sub, st.sampled_from(CHANGES), st.timedeltas(timedelta(0), 2 * DAY)),
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    gap_free_schedules(),
    INSTANTS,
    st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=40)),
    st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=5),
)
def test_a_gap_free_schedule_has_exactly_one_person_at_every_instant(
    gap_free: Schedule, start: datetime, length: timedelta, probes: list[float]
) -> None:
    end = start + length

    shifts = final_shifts(gap_free, start, end)

    assert shifts[0].start == start
    assert shifts[-1].end == end
    for shift, following in pairwise(shifts):
        assert shift.start < shift.end == following.start
        assert shift.person != following.person  # adjacent ones of one person are merged
    assert gaps(gap_free, start, end) == []
    for fraction in probes:
        at = min(start + length * fraction, end - timedelta(microseconds=1))  # float rounding
        (holding,) = [s for s in shifts if s.start <= at < s.end]
        assert on_call_at(gap_free, at) == holding.person


@st.composite
def restrictions(draw: st.DrawFn) -> Restriction:
    weekdays = draw(st.frozensets(st.integers(0, 6), min_size=1))
    start, end = draw(
        st.lists(st.sampled_from([time(h) for h in range(24)]), min_size=2, max_size=2)
    )
    return Restriction(weekdays, start, end)


@st.composite
def any_schedules(draw: st.DrawFn) -> Schedule:
    """Up to three layers, some restricted, some starting inside the window, and overrides."""
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    layers = []
    for n in range(draw(st.integers(0, 3))):
        members = tuple(draw(st.lists(st.sampled_from("abcde"), max_size=3)))
        shift = draw(st.sampled_from([HOUR, 8 * HOUR, 12 * HOUR, DAY, 2 * DAY, WEEK]))
        start = draw(st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 1, 1)))
        handoff = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
        limits = tuple(draw(st.lists(restrictions(), max_size=2)))
        layers.append(Layer(f"layer-{n}", members, shift, handoff, zone, start, limits))
    overrides = draw(st.lists(overrides_near(), max_size=2))
    return Schedule("property", zone, tuple(layers), tuple(overrides))


@st.composite
def overrides_near(draw: st.DrawFn) -> Override:
    start = draw(INSTANTS)
    return Override(
        draw(st.sampled_from("abcdef")), start, start + draw(st.timedeltas(HOUR, 9 * DAY))
    )


@settings(max_examples=300, deadline=None, database=None)
@given(
    any_schedules(),
    INSTANTS,
    st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=20)),
    st.lists(overrides_near(), max_size=3),
    st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=5),
)
def test_shifts_and_gaps_tile_any_window(
    any_schedule: Schedule,
    start: datetime,
    length: timedelta,
    stored: list[Override],
    probes: list[float],
) -> None:
    end = start + length

    shifts = final_shifts(any_schedule, start, end, stored)
    holes = gaps(any_schedule, start, end, stored)

    pieces = sorted([(s.start, s.end) for s in shifts] + [(g.start, g.end) for g in holes])
    assert pieces[0][0] == start
    assert pieces[-1][1] == end
    assert all(a[0] < a[1] == b[0] for a, b in pairwise(pieces))
    for shift, following in pairwise(shifts):
        assert shift.end < following.start or shift.person != following.person
    for fraction in probes:
        at = min(start + length * fraction, end - timedelta(microseconds=1))
        holding: list[str | None] = [s.person for s in shifts if s.start <= at < s.end]
        assert [on_call_at(any_schedule, at, stored)] == (holding or [None])
