"""Shifts as an iCalendar feed, read back with icalendar: one event per shift, UTC times, the
person's name and the schedule in the summary, UIDs that survive a re-read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component

from responders.oncall.calendar import shift_uid, shifts_calendar
from responders.oncall.model import Shift

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)
PEOPLE = {"ann": "Ann Example", "bob": "Bob Example"}
SHIFTS = [
    Shift(
        "bob",
        datetime(2027, 3, 28, 3, 30, tzinfo=BERLIN),
        datetime(2027, 3, 29, 2, 30, tzinfo=BERLIN),
        "primary",
    ),
    Shift(
        "ann",
        datetime(2027, 3, 27, 1, 30, tzinfo=UTC),
        datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
        "primary",
    ),
    Shift(
        "cy",
        datetime(2027, 3, 29, 0, 30, tzinfo=UTC),
        datetime(2027, 3, 30, 0, 30, tzinfo=UTC),
        "primary",
    ),
]


def events(feed: bytes) -> list[Component]:
    return list(Calendar.from_ical(feed).walk("VEVENT"))


def test_one_event_per_shift_in_utc_sorted() -> None:
    found = events(shifts_calendar("Primary on call", SHIFTS, PEOPLE, NOW))

    assert [(e.decoded("dtstart"), e.decoded("dtend")) for e in found] == [
        (datetime(2027, 3, 27, 1, 30, tzinfo=UTC), datetime(2027, 3, 28, 1, 30, tzinfo=UTC)),
        (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), datetime(2027, 3, 29, 0, 30, tzinfo=UTC)),
        (datetime(2027, 3, 29, 0, 30, tzinfo=UTC), datetime(2027, 3, 30, 0, 30, tzinfo=UTC)),
    ]
    assert all(e.decoded("dtstamp") == NOW for e in found)


def test_the_wire_format_says_utc() -> None:
    feed = shifts_calendar("Primary on call", SHIFTS[:1], PEOPLE, NOW).decode()

    assert "DTSTART:20270328T013000Z\r\n" in feed
    assert "DTEND:20270329T003000Z\r\n" in feed
    assert "DTSTAMP:20270320T120000Z\r\n" in feed


def test_summaries_name_the_person_and_the_schedule() -> None:
    found = events(shifts_calendar("Primary on call", SHIFTS, PEOPLE, NOW))

    assert [str(e["summary"]) for e in found] == [
        "On call: Ann Example (primary)",
        "On call: Bob Example (primary)",
        "On call: cy (primary)",  # no display name: the id
    ]


def test_the_calendar_is_named_and_versioned() -> None:
    calendar = Calendar.from_ical(shifts_calendar("Ann's shifts", [], PEOPLE, NOW))

    assert str(calendar["x-wr-calname"]) == "Ann's shifts"
    assert str(calendar["version"]) == "2.0"
    assert str(calendar["prodid"]).startswith("-//Stormwatch//")
    assert events(calendar.to_ical()) == []


def test_uids_are_stable_across_feeds_and_end_changes() -> None:
    first = [str(e["uid"]) for e in events(shifts_calendar("a", SHIFTS, PEOPLE, NOW))]
    later = NOW + timedelta(hours=5)
    cut_short = [Shift(s.person, s.start, s.end - timedelta(hours=1), s.schedule) for s in SHIFTS]
    again = [str(e["uid"]) for e in events(shifts_calendar("b", cut_short, PEOPLE, later))]

    assert first == again
    assert len(set(first)) == 3
    assert first[1] == shift_uid(SHIFTS[0])


def test_uids_differ_by_schedule_person_and_start() -> None:
    shift = SHIFTS[1]
    others = [
        Shift(shift.person, shift.start, shift.end, "secondary"),
        Shift("bob", shift.start, shift.end, shift.schedule),
        Shift(shift.person, shift.start + timedelta(hours=1), shift.end, shift.schedule),
    ]

    assert len({shift_uid(s) for s in [shift, *others]}) == 4
    assert shift_uid(
        Shift("ann", shift.start.astimezone(BERLIN), shift.end, "primary")
    ) == shift_uid(shift)


def test_a_person_feed_across_schedules() -> None:
    mixed = [
        Shift(
            "ann",
            datetime(2027, 4, 1, 7, tzinfo=UTC),
            datetime(2027, 4, 1, 15, tzinfo=UTC),
            "office",
        ),
        Shift(
            "ann",
            datetime(2027, 4, 1, 7, tzinfo=UTC),
            datetime(2027, 4, 2, 7, tzinfo=UTC),
            "primary",
        ),
    ]

    found = events(shifts_calendar("Ann Example", mixed, PEOPLE, NOW))

    assert [str(e["summary"]) for e in found] == [
        "On call: Ann Example (office)",
        "On call: Ann Example (primary)",
    ]
    assert len({str(e["uid"]) for e in found}) == 2
