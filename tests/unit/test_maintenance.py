"""Silences and maintenance windows: strict parsing, scope, and when they hold pages back.

DST dates used below (2024): Europe/Berlin springs forward on 31 March at 02:00 CET (01:00Z) and
falls back on 27 October at 03:00 CEST (01:00Z); America/New_York springs forward on 10 March at
02:00 EST (07:00Z) and falls back on 3 November at 02:00 EDT (06:00Z).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from detector.ruleset.maintenance import (
    ActiveWindow,
    MaintenanceWindowSpec,
    SilenceSpec,
    Weekday,
    active_window,
    never_active,
)

DROP = object()
"""An override value meaning: leave the key out."""

SILENCE: dict[str, Any] = {
    "name": "pg-upgrade",
    "match": ['service="checkout-db"'],
    "starts_at": "2024-05-01T02:00:00+02:00",
    "ends_at": "2024-05-01T04:00:00+02:00",
    "comment": "PostgreSQL 16 upgrade, CHG-1234",
}
WINDOW: dict[str, Any] = {
    "name": "nightly-reindex",
    "rules": ["pool-exhausted"],
    "location": "Europe/Berlin",
    "start": "01:00",
    "end": "03:00",
    "comment": "nightly reindex saturates the pool",
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An aware UTC instant: expectations are real instants, comments give the wall clock."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def silence(**changes: Any) -> SilenceSpec:
    return SilenceSpec.model_validate(_with(SILENCE, changes))


def window(**changes: Any) -> MaintenanceWindowSpec:
    return MaintenanceWindowSpec.model_validate(_with(WINDOW, changes))


def _wall(day: date, text: str) -> datetime:
    """Naive local wall time ``text`` ("HH:MM", up to "24:00") on ``day``."""
    hours, minutes = text.split(":")
    return datetime.combine(day, time()) + timedelta(hours=int(hours), minutes=int(minutes))


def _with(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {key: value for key, value in merged.items() if value is not DROP}


class TestParsing:
    @pytest.mark.parametrize(
        ("weekdays", "expected"),
        [
            pytest.param(DROP, list(Weekday), id="default is every day"),
            pytest.param(
                ["monday:friday"],
                ["monday", "tuesday", "wednesday", "thursday", "friday"],
                id="range",
            ),
            pytest.param(["saturday", "sunday"], ["saturday", "sunday"], id="single days"),
            pytest.param(
                ["friday:monday"],
                ["monday", "friday", "saturday", "sunday"],
                id="range wraps past sunday",
            ),
            pytest.param(["sunday:saturday"], list(Weekday), id="alertmanager sunday-first week"),
            pytest.param(["Monday", " tuesday "], ["monday", "tuesday"], id="case and spaces"),
            pytest.param(["tuesday", "monday:tuesday"], ["monday", "tuesday"], id="repeats merged"),
            pytest.param([], [], id="empty list is kept for the loader to report"),
        ],
    )
    def test_weekdays(self, weekdays: object, expected: list[str]) -> None:
        assert list(window(weekdays=weekdays).weekdays) == expected

    def test_window_round_trips_as_written(self) -> None:
        spec = window(end="24:00", weekdays=["monday:tuesday"], match=["env=prod"])
        dumped = spec.model_dump(mode="json")
        assert dumped["location"] == "Europe/Berlin"
        assert (dumped["start"], dumped["end"]) == ("01:00", "24:00")
        assert dumped["match"] == ['env="prod"']
        assert MaintenanceWindowSpec.model_validate(dumped) == spec

    def test_silence_keeps_its_offset_and_defaults(self) -> None:
        spec = silence(starts_at=datetime(2024, 5, 1, 2, tzinfo=timezone(timedelta(hours=2))))
        assert spec.starts_at == utc(2024, 5, 1, 0)
        assert spec.created_by == ""
        assert spec.rules == ()

    def test_yaml_timestamps_are_accepted(self) -> None:
        data = yaml.safe_load("starts_at: 2024-05-01T02:00:00Z\nends_at: 2024-05-01 05:00:00+02:00")
        assert silence(**data).ends_at == utc(2024, 5, 1, 3)

    def test_json_schema_describes_file_shapes(self) -> None:
        properties = MaintenanceWindowSpec.model_json_schema()["properties"]
        assert properties["location"]["type"] == "string"
        assert properties["start"]["type"] == "string"
        assert properties["weekdays"]["items"]["type"] == "string"


class TestValidationErrors:
    @pytest.mark.parametrize(
        ("model", "base", "changes", "loc", "reason"),
        [
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"starts_at": "2024-05-01T02:00:00"},
                ("starts_at",),
                "add one, like 2024-05-01T02:00:00+01:00 or Z",
                id="naive text",
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"ends_at": datetime(2024, 5, 1, 4)},  # noqa: DTZ001
                ("ends_at",),
                "has no UTC offset",
                id="naive datetime from yaml",
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"ends_at": SILENCE["starts_at"]},
                (),
                "can never be active",
                id="ends when it starts",
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"ends_at": "2024-05-01T01:00:00+02:00"},
                (),
                "can never be active",
                id="ends before it starts",
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"comment": DROP},
                ("comment",),
                "Field required",
                id="comment missing",
            ),
            pytest.param(
                SilenceSpec, SILENCE, {"comment": "  "}, ("comment",), "say why", id="comment blank"
            ),
            pytest.param(
                SilenceSpec, SILENCE, {"match": DROP}, (), "set match, rules or both", id="no scope"
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"match": []},
                ("match",),
                "empty list",
                id="empty match list",
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"match": ["env==prod"]},
                ("match", 0),
                'unknown operator "=="',
                id="bad matcher",
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"rules": ["no spaces"]},
                ("rules", 0),
                "should match pattern",
                id="bad rule name",
            ),
            pytest.param(
                SilenceSpec,
                SILENCE,
                {"expires": "2h"},
                ("expires",),
                "Extra inputs are not permitted",
                id="unknown key",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"location": "Europe/Berlln"},
                ("location",),
                "unknown time zone 'Europe/Berlln'",
                id="zone typo",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"location": "Europe"},
                ("location",),
                "unknown time zone",
                id="zone directory",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"location": "../../etc/passwd"},
                ("location",),
                "unknown time zone",
                id="zone path",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"start": "25:00"},
                ("start",),
                'write "HH:MM"',
                id="hour out of range",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"start": "12:60"},
                ("start",),
                'write "HH:MM"',
                id="minute out of range",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"start": "1:00"},
                ("start",),
                'write "HH:MM"',
                id="one digit hour",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"end": "noon"},
                ("end",),
                'write "HH:MM"',
                id="words",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                yaml.safe_load("start: 23:00"),
                ("start",),
                "YAML reads 23:00 as the number 1380",
                id="unquoted yaml",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"start": "03:00"},
                (),
                "start equals end",
                id="end equals start",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"start": "24:00"},
                (),
                "write that instead",
                id="start at 24:00",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"weekdays": ["wendesday"]},
                ("weekdays",),
                "unknown weekday 'wendesday' (did you mean 'wednesday'?)",
                id="weekday typo",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"weekdays": ["monday:fridya"]},
                ("weekdays",),
                "did you mean 'friday'?",
                id="range typo",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"weekdays": ["weekend"]},
                ("weekdays",),
                "use mon..sun, monday..sunday or ranges like mon:fri",
                id="weekday unknown",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"weekdays": "monday"},
                ("weekdays",),
                "valid tuple",
                id="weekdays not a list",
            ),
            pytest.param(
                MaintenanceWindowSpec,
                WINDOW,
                {"timezone": "UTC"},
                ("timezone",),
                "Extra inputs are not permitted",
                id="window unknown key",
            ),
        ],
    )
    def test_rejected(
        self,
        model: type[SilenceSpec | MaintenanceWindowSpec],
        base: dict[str, Any],
        changes: dict[str, Any],
        loc: tuple[str | int, ...],
        reason: str,
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            model.model_validate(_with(base, changes))
        found = [(error["loc"], error["msg"]) for error in raised.value.errors()]
        assert len(found) == 1, found
        assert found[0][0] == loc
        assert reason in found[0][1]


class TestAppliesTo:
    @pytest.mark.parametrize(
        ("scope", "rule", "labels", "expected"),
        [
            pytest.param({"rules": ["a", "b"]}, "b", {}, True, id="rule listed"),
            pytest.param({"rules": ["a"]}, "c", {}, False, id="rule not listed"),
            pytest.param(
                {"match": ['env="prod"', 'service=~"pg.*"']},
                "any",
                {"env": "prod", "service": "pgbouncer"},
                True,
                id="all matchers match",
            ),
            pytest.param(
                {"match": ['env="prod"', 'service=~"pg.*"']},
                "any",
                {"env": "prod", "service": "redis"},
                False,
                id="one matcher fails",
            ),
            pytest.param(
                {"match": ['env!="staging"']}, "any", {}, True, id="missing label is empty"
            ),
            pytest.param(
                {"rules": ["a"], "match": ['env="prod"']},
                "a",
                {"env": "prod"},
                True,
                id="both hold",
            ),
            pytest.param(
                {"rules": ["a"], "match": ['env="prod"']},
                "a",
                {"env": "dev"},
                False,
                id="rule listed but labels differ",
            ),
            pytest.param(
                {"rules": ["a"], "match": ['env="prod"']},
                "b",
                {"env": "prod"},
                False,
                id="labels match but rule not listed",
            ),
        ],
    )
    def test_scope(
        self, scope: dict[str, Any], rule: str, labels: dict[str, str], expected: bool
    ) -> None:
        only_scope = {"match": DROP, "rules": DROP, **scope}
        assert silence(**only_scope).applies_to(rule, labels) is expected
        assert window(**only_scope).applies_to(rule, labels) is expected


class TestSilenceActiveUntil:
    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            pytest.param(utc(2024, 4, 30, 23, 59), None, id="before"),
            pytest.param(utc(2024, 5, 1, 0), utc(2024, 5, 1, 2), id="at start inclusive"),
            pytest.param(utc(2024, 5, 1, 1, 30), utc(2024, 5, 1, 2), id="inside"),
            pytest.param(utc(2024, 5, 1, 2), None, id="at end exclusive"),
            pytest.param(utc(2024, 5, 2), None, id="after"),
            pytest.param(
                datetime(2024, 5, 1, 3, tzinfo=timezone(timedelta(hours=2))),
                utc(2024, 5, 1, 2),
                id="now in another offset",
            ),
        ],
    )
    def test_active_until(self, now: datetime, expected: datetime | None) -> None:
        until = silence().active_until(now)
        assert until == expected
        assert until is None or until.tzinfo is UTC


class TestRecurringActiveUntil:
    @pytest.mark.parametrize(
        ("changes", "now", "expected"),
        [
            # Weekday filtering (UTC keeps the arithmetic obvious).
            pytest.param(
                {
                    "location": "UTC",
                    "start": "09:00",
                    "end": "17:00",
                    "weekdays": ["monday:friday"],
                },
                utc(2024, 1, 10, 12),
                utc(2024, 1, 10, 17),
                id="utc weekday inside",
            ),
            pytest.param(
                {
                    "location": "UTC",
                    "start": "09:00",
                    "end": "17:00",
                    "weekdays": ["monday:friday"],
                },
                utc(2024, 1, 13, 12),
                None,
                id="utc saturday filtered",
            ),
            pytest.param(
                {"location": "UTC", "start": "09:00", "end": "17:00"},
                utc(2024, 1, 8, 9),
                utc(2024, 1, 8, 17),
                id="start inclusive",
            ),
            pytest.param(
                {"location": "UTC", "start": "09:00", "end": "17:00"},
                utc(2024, 1, 8, 17),
                None,
                id="end exclusive",
            ),
            pytest.param(
                {"location": "UTC", "start": "09:00", "end": "17:00"},
                utc(2024, 1, 8, 8, 59),
                None,
                id="before start",
            ),
            pytest.param(
                {"location": "UTC", "start": "00:00", "end": "24:00", "weekdays": ["sunday"]},
                utc(2024, 1, 14, 23, 59),
                utc(2024, 1, 15),
                id="utc whole day to 24:00",
            ),
            # Crossing midnight: the occurrence belongs to the day it starts (Fri 12 Jan 2024).
            pytest.param(
                {"start": "23:00", "end": "02:00", "weekdays": ["friday"]},
                utc(2024, 1, 12, 22, 30),
                utc(2024, 1, 13, 1),
                id="friday night",
            ),
            pytest.param(
                {"start": "23:00", "end": "02:00", "weekdays": ["friday"]},
                utc(2024, 1, 13, 0, 30),
                utc(2024, 1, 13, 1),
                id="saturday early started friday",
            ),
            pytest.param(
                {"start": "23:00", "end": "02:00", "weekdays": ["friday"]},
                utc(2024, 1, 13, 22, 30),
                None,
                id="saturday night not listed",
            ),
            pytest.param(
                {"start": "23:00", "end": "02:00", "weekdays": ["friday"]},
                utc(2024, 1, 11, 23, 30),
                None,
                id="friday early started thursday not listed",
            ),
            pytest.param(
                {"start": "23:00", "end": "02:00", "weekdays": ["friday"]},
                utc(2024, 1, 13, 1),
                None,
                id="crossing end exclusive",
            ),
            # Europe/Berlin spring forward, Sun 31 Mar 2024: 02:00 CET jumps to 03:00 CEST.
            pytest.param(
                {},
                utc(2024, 3, 31, 0, 30),
                utc(2024, 3, 31, 1),
                id="berlin spring 01-03 lasts one real hour",
            ),
            pytest.param({}, utc(2024, 3, 31, 1), None, id="berlin spring 01-03 over at jump"),
            pytest.param(
                {"start": "02:00"},
                utc(2024, 3, 31, 0, 59),
                None,
                id="berlin spring 02-03 before the gap",
            ),
            pytest.param(
                {"start": "02:00"},
                utc(2024, 3, 31, 1),
                None,
                id="berlin spring 02-03 skipped entirely",
            ),
            pytest.param(
                {"start": "02:00"},
                utc(2024, 4, 1, 0, 30),
                utc(2024, 4, 1, 1),
                id="berlin 02-03 back the next night in CEST",
            ),
            pytest.param(
                {"start": "02:30", "end": "04:00"},
                utc(2024, 3, 31, 1),
                utc(2024, 3, 31, 2),
                id="berlin spring start in gap begins at jump",
            ),
            pytest.param(
                {"start": "00:00", "end": "02:30"},
                utc(2024, 3, 31, 0, 59),
                utc(2024, 3, 31, 1),
                id="berlin spring end in gap ends at jump",
            ),
            # Europe/Berlin fall back, Sun 27 Oct 2024: 03:00 CEST goes back to 02:00 CET.
            pytest.param(
                {},
                utc(2024, 10, 26, 23),
                utc(2024, 10, 27, 2),
                id="berlin fall 01-03 lasts three real hours",
            ),
            pytest.param(
                {},
                utc(2024, 10, 27, 1, 30),
                utc(2024, 10, 27, 2),
                id="berlin fall inside the repeated hour",
            ),
            pytest.param({}, utc(2024, 10, 27, 2), None, id="berlin fall over at 03:00 CET"),
            pytest.param(
                {"end": "02:30"},
                utc(2024, 10, 27, 0, 15),
                utc(2024, 10, 27, 1, 30),
                id="berlin fall end on repeated time takes the last",
            ),
            pytest.param(
                {"start": "02:30", "end": "04:00"},
                utc(2024, 10, 27, 0, 30),
                utc(2024, 10, 27, 3),
                id="berlin fall start on repeated time first",
            ),
            pytest.param(
                {"end": "02:00"},
                utc(2024, 10, 27, 0, 30),  # 02:30 CEST: the clock never reads <02:00 again
                None,
                id="berlin fall end where the repeat begins takes the first",
            ),
            pytest.param(
                {"start": "22:00", "end": "04:00", "weekdays": ["saturday"]},
                utc(2024, 10, 27, 2, 30),
                utc(2024, 10, 27, 3),
                id="berlin fall crossing midnight seven real hours",
            ),
            # America/New_York: spring Sun 10 Mar 2024 02:00 EST -> 03:00 EDT (07:00Z).
            pytest.param(
                {"location": "America/New_York"},
                utc(2024, 3, 10, 6, 30),
                utc(2024, 3, 10, 7),
                id="new york spring 01-03 one real hour",
            ),
            pytest.param(
                {"location": "America/New_York", "start": "02:00", "end": "02:30"},
                utc(2024, 3, 10, 7),
                None,
                id="new york spring skipped window",
            ),
            # America/New_York: fall Sun 3 Nov 2024 02:00 EDT -> 01:00 EST (06:00Z).
            pytest.param(
                {"location": "America/New_York"},
                utc(2024, 11, 3, 5),
                utc(2024, 11, 3, 8),
                id="new york fall 01-03 three real hours",
            ),
            pytest.param(
                {"location": "America/New_York"},
                utc(2024, 11, 3, 6, 30),
                utc(2024, 11, 3, 8),
                id="new york fall second 01:30",
            ),
            pytest.param(
                {"location": "America/New_York", "start": "00:00", "end": "01:30"},
                utc(2024, 11, 3, 6, 15),
                utc(2024, 11, 3, 6, 30),
                id="new york fall end on repeated time takes the last",
            ),
        ],
    )
    def test_active_until(
        self, changes: dict[str, Any], now: datetime, expected: datetime | None
    ) -> None:
        until = window(**changes).active_until(now)
        assert until == expected
        assert until is None or until.tzinfo is UTC

    def test_occurrence_length_follows_the_clock(self) -> None:
        spec = window()
        lengths = {
            day: end - start
            for day in (date(2024, 3, 31), date(2024, 6, 1), date(2024, 10, 27))
            for start, end in [spec.occurrence(day)]
        }
        assert lengths == {
            date(2024, 3, 31): timedelta(hours=1),
            date(2024, 6, 1): timedelta(hours=2),
            date(2024, 10, 27): timedelta(hours=3),
        }

    @pytest.mark.parametrize(
        ("zone", "day"),
        [
            pytest.param("Europe/Berlin", date(2024, 3, 31), id="berlin spring"),
            pytest.param("Europe/Berlin", date(2024, 10, 27), id="berlin fall"),
            pytest.param("America/New_York", date(2024, 3, 10), id="new york spring"),
            pytest.param("America/New_York", date(2024, 11, 3), id="new york fall"),
            pytest.param("Australia/Lord_Howe", date(2024, 4, 7), id="lord howe half hour"),
        ],
    )
    @pytest.mark.parametrize(
        ("start", "end"),
        [
            ("01:00", "03:00"),
            ("02:00", "02:30"),
            ("02:30", "04:00"),
            ("00:00", "02:00"),
            ("22:00", "02:15"),
            ("01:30", "24:00"),
        ],
    )
    def test_occurrence_matches_its_definition(
        self, zone: str, day: date, start: str, end: str
    ) -> None:
        """From the first moment the clock reads start or later to the last it reads < end."""
        spec = window(location=zone, start=start, end=end)
        start_wall = _wall(day, start)
        end_wall = _wall(day + timedelta(days=end < start), end)
        step = timedelta(minutes=5)
        grid = [
            utc(day.year, day.month, day.day) - timedelta(hours=16) + step * i for i in range(900)
        ]
        walls = [(t, t.astimezone(spec.location).replace(tzinfo=None)) for t in grid]
        first = next(t for t, wall in walls if wall >= start_wall)
        last = max(t for t, wall in walls if wall < end_wall)
        assert spec.occurrence(day) == (first, last + step)


class TestActiveWindow:
    NOW = utc(2024, 5, 1, 1)

    def test_picks_the_latest_end(self) -> None:
        windows = [
            silence(name="short", ends_at="2024-05-01T03:30:00+02:00"),
            silence(name="long", ends_at="2024-05-01T05:00:00+02:00"),
            silence(name="middle"),
        ]
        found = active_window(windows, "pool-exhausted", {"service": "checkout-db"}, self.NOW)
        assert found == ActiveWindow("long", utc(2024, 5, 1, 3))

    def test_ignores_windows_that_do_not_apply(self) -> None:
        windows: list[SilenceSpec | MaintenanceWindowSpec] = [
            silence(
                name="other-service",
                match=['service="search"'],
                ends_at="2024-05-01T09:00:00+02:00",
            ),
            window(rules=["other-rule"], start="00:00", end="06:00"),
            silence(name="applies"),
        ]
        found = active_window(windows, "pool-exhausted", {"service": "checkout-db"}, self.NOW)
        assert found == ActiveWindow("applies", utc(2024, 5, 1, 2))

    def test_recurring_window_can_win(self) -> None:
        windows: list[SilenceSpec | MaintenanceWindowSpec] = [
            silence(),
            window(start="02:00", end="06:00"),  # 06:00 CEST = 04:00Z
        ]
        found = active_window(windows, "pool-exhausted", {"service": "checkout-db"}, self.NOW)
        assert found == ActiveWindow("nightly-reindex", utc(2024, 5, 1, 4))

    @pytest.mark.parametrize(
        "windows",
        [
            pytest.param([], id="no windows"),
            pytest.param(
                [
                    silence(
                        starts_at="2024-05-01T05:00:00+02:00", ends_at="2024-05-01T06:00:00+02:00"
                    )
                ],
                id="not yet active",
            ),
            pytest.param([window(start="05:00", end="06:00")], id="recurring not now"),
        ],
    )
    def test_none_active(self, windows: list[SilenceSpec | MaintenanceWindowSpec]) -> None:
        assert (
            active_window(windows, "pool-exhausted", {"service": "checkout-db"}, self.NOW) is None
        )


class TestNeverActive:
    NOW = utc(2024, 6, 1)

    @pytest.mark.parametrize(
        ("spec", "reason"),
        [
            pytest.param(silence(), None, id="expired silence is not an error"),
            pytest.param(silence(ends_at="2030-01-01T00:00:00Z"), None, id="running silence"),
            pytest.param(
                SilenceSpec.model_construct(**{**silence().__dict__, "ends_at": utc(2024, 4, 1)}),
                "can never be active",
                id="silence ending before start",
            ),
            pytest.param(window(), None, id="recurring every day"),
            pytest.param(window(weekdays=[]), "weekdays is empty", id="no weekdays"),
            pytest.param(
                MaintenanceWindowSpec.model_construct(**{**window().__dict__, "end": 60}),
                "start equals end",
                id="start equals end",
            ),
        ],
    )
    def test_reason(self, spec: SilenceSpec | MaintenanceWindowSpec, reason: str | None) -> None:
        found = never_active(spec, self.NOW)
        assert found == reason if reason is None else reason in (found or "")
