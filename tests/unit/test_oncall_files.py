"""The on-call sections of the rule files: people, schedules and escalation targets, checked
like every section (``file:line: field: reason``), built into the resolver's types, and warned
about when nobody would be on call in the next 14 days."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from detector.cli import main
from detector.ruleset.live import LiveRules
from detector.ruleset.loader import load_ruleset
from detector.ruleset.oncall_checks import GAP_HORIZON
from detector.ruleset.reload import RulesReloader
from detector.service.metrics import Metrics
from responders.escalation import EscalationPolicy, EscalationStep
from responders.oncall.model import Layer, Override, Restriction, Schedule
from responders.oncall.resolver import gaps
from tests.fakes import FakeClock
from tests.unit.test_rule_loading import RULE, SHARED, load_errors, rules_dir

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Berlin (CET)

PEOPLE = """\
people:
  - id: ana
    name: Ana Lima
    time_zone: Europe/Berlin
    contact_methods:
      - {type: email, to: ana@shop.example}
      - {type: webhook, url: "http://127.0.0.1:8080/ana"}
  - id: ben
    name: Ben Okafor
    time_zone: America/New_York
    contact_methods:
      - {type: email, to: ben@shop.example}
"""

SCHEDULE = """\
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - members: [ana, ben]
        shift: 1w
        handoff: "09:00"
        start: 2027-01-04
"""


def schedule_with(layer_lines: str = "", extra: str = "") -> str:
    """SCHEDULE with lines added to its layer (line 9 on) and then to the schedule."""
    return SCHEDULE + layer_lines + extra


def policy(*steps: str, head: str = "") -> str:
    """A policy file: ``head`` lines for the policy, then one step per flow mapping."""
    lines = ["escalation_policies:", "  - name: tiered", *head.splitlines(), "    steps:"]
    return "\n".join([*lines, *(f"      - {step}" for step in steps)]) + "\n"


def oncall_errors_of(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """The errors of the base directory plus ``files``, relative to it."""
    base = {"shared.yml": SHARED, "rules.yml": RULE, "people.yml": PEOPLE}
    directory = rules_dir(tmp_path, base | files)
    return [error.removeprefix(f"{directory}/") for error in load_errors(directory)]


class TestErrors:
    @pytest.mark.parametrize(
        ("files", "expected"),
        [
            pytest.param(
                {"s.yml": SCHEDULE.replace("[ana, ben]", "[ana, bem]")},
                ["s.yml:5: schedules[0].layers[0].members[1]: unknown person 'bem'"],
                id="unknown person in a layer",
            ),
            pytest.param(
                {
                    "s.yml": schedule_with(
                        extra="    overrides:\n"
                        "      - {person: carl, start: '2027-03-06T09:00:00+01:00',"
                        " end: '2027-03-07T09:00:00+01:00'}\n"
                    )
                },
                ["s.yml:10: schedules[0].overrides[0].person: unknown person 'carl'"],
                id="unknown person in an override",
            ),
            pytest.param(
                {
                    "s.yml": schedule_with(
                        extra="    overrides:\n"
                        "      - {person: ana, start: '2027-03-06T09:00:00+01:00',"
                        " end: '2027-03-07T09:00:00+01:00'}\n"
                        "      - {person: ben, start: '2027-03-06T20:00:00+01:00',"
                        " end: '2027-03-06T22:00:00+01:00'}\n"
                    )
                },
                [
                    "s.yml:11: schedules[0].overrides[1]: overlaps overrides[0] (ana, from"
                    " 2027-03-06T09:00:00+01:00 to 2027-03-07T09:00:00+01:00): one person per"
                    " slot, so shorten or merge them"
                ],
                id="overlapping overrides of one schedule",
            ),
            pytest.param(
                {
                    "s.yml": schedule_with(
                        extra="    overrides:\n"
                        "      - {person: ana, start: '2027-03-06T09:00:00',"
                        " end: '2027-03-07T09:00:00Z'}\n"
                    )
                },
                [
                    "s.yml:10: schedules[0].overrides[0].start: 2027-03-06T09:00:00 has no UTC"
                    " offset: add one, like 2024-05-01T02:00:00+01:00 or Z"
                ],
                id="override without a UTC offset",
            ),
            pytest.param(
                {
                    "s.yml": schedule_with(
                        extra="    overrides:\n"
                        "      - {person: ana, start: '2027-03-07T09:00:00Z',"
                        " end: '2027-03-06T09:00:00Z'}\n"
                    )
                },
                [
                    "s.yml:10: schedules[0].overrides[0]: end is not after start:"
                    " the override would never apply"
                ],
                id="override ending before it starts",
            ),
            pytest.param(
                {
                    "s.yml": schedule_with(
                        "        restrictions:\n"
                        "          - {days: [mon:fri], from: '09:00', to: '09:00'}\n"
                    )
                },
                [
                    "s.yml:10: schedules[0].layers[0].restrictions[0]: from equals to: empty or"
                    ' the whole day? For a whole day write "00:00" to "24:00"'
                ],
                id="restriction from equals to",
            ),
            pytest.param(
                {
                    "s.yml": schedule_with(
                        "        restrictions:\n"
                        "          - {days: [mon, funday], from: '09:00', to: '17:00'}\n"
                    )
                },
                [
                    "s.yml:10: schedules[0].layers[0].restrictions[0].days: unknown weekday"
                    " 'funday' (did you mean 'sunday'?): use mon..sun, monday..sunday or ranges"
                    " like mon:fri"
                ],
                id="unknown weekday",
            ),
            pytest.param(
                {"s.yml": SCHEDULE.replace("shift: 1w", "shift: 1h30m")},
                [
                    "s.yml:6: schedules[0].layers[0].shift: shift 1h30m is not a whole number"
                    " of hours: write hours, days or weeks, like 12h, 1d or 1w"
                ],
                id="shift not a whole number of hours",
            ),
            pytest.param(
                {"s.yml": SCHEDULE.replace('handoff: "09:00"', "handoff: 17:00")},
                [
                    "s.yml:7: schedules[0].layers[0].handoff: invalid time 1020: write"
                    ' "HH:MM" in quotes, "00:00" to "24:00"; unquoted, YAML reads 23:00 as the'
                    " number 1380"
                ],
                id="unquoted handoff time read as a number",
            ),
            pytest.param(
                {"s.yml": SCHEDULE.replace("time_zone: Europe/Berlin", "time_zone: Europe/Berln")},
                [
                    "s.yml:3: schedules[0].time_zone: unknown time zone 'Europe/Berln':"
                    " use an IANA name like Europe/Berlin or UTC"
                ],
                id="unknown schedule time zone",
            ),
            pytest.param(
                {"p.yml": "people: [{id: carl, name: Carl, time_zone: CEST}]\n"},
                [
                    "p.yml:1: people[0].time_zone: unknown time zone 'CEST': use an IANA name"
                    " like Europe/Berlin or UTC"
                ],
                id="person's time zone not an IANA name",
            ),
            pytest.param(
                {"p.yml": "people: [{id: carl, name: Carl, time_zone: UTC}]\n"},
                [
                    "p.yml:1: people[0].contact_methods: no contact methods: list at least one"
                    " (email, slack, webhook or pagerduty), or no page can reach them"
                ],
                id="person without a contact method",
            ),
            pytest.param(
                {
                    "p.yml": "people:\n"
                    "  - id: carl\n"
                    "    name: Carl\n"
                    "    time_zone: UTC\n"
                    "    contact_methods:\n"
                    "      - {type: email, to: carl@shop.example}\n"
                    "      - {type: slack}\n"
                },
                ["p.yml:7: people[0].contact_methods[1]: set exactly one of url or url_env"],
                id="contact method's target problem",
            ),
            pytest.param(
                {"q.yml": "people: [{id: ana, name: Ana Two, time_zone: UTC}]\n"},
                [
                    "q.yml:1: people[0].id: duplicate id 'ana', first defined at"
                    " {directory}/people.yml:2"
                ],
                id="duplicate person id across files",
            ),
            pytest.param(
                {"a.yml": SCHEDULE, "b.yml": SCHEDULE},
                [
                    "b.yml:2: schedules[0].name: duplicate name 'primary', first defined at"
                    " {directory}/a.yml:2"
                ],
                id="duplicate schedule name",
            ),
            pytest.param(
                {
                    "s.yml": SCHEDULE,
                    "t.yml": policy("targets: [{schedule: primary}, {person: eve}]"),
                },
                [
                    "t.yml:4: escalation_policies[0].steps[0].targets[1].person:"
                    " unknown person 'eve'"
                ],
                id="unknown person target",
            ),
            pytest.param(
                {"t.yml": policy("targets: [{schedule: primry}]")},
                [
                    "t.yml:4: escalation_policies[0].steps[0].targets[0].schedule:"
                    " unknown schedule 'primry'"
                ],
                id="unknown schedule target",
            ),
            pytest.param(
                {"t.yml": policy("targets: [{channel: pagr}]")},
                [
                    "t.yml:4: escalation_policies[0].steps[0].targets[0].channel:"
                    " unknown channel 'pagr'"
                ],
                id="unknown channel target",
            ),
            pytest.param(
                {"t.yml": policy("targets: [{schedule: primary, person: ana}]")},
                [
                    "t.yml:4: escalation_policies[0].steps[0].targets[0]: name exactly one of"
                    " schedule, person or channel (got schedule, person)"
                ],
                id="a target naming two kinds",
            ),
            pytest.param(
                {"t.yml": policy("targets: [{team: sre}]")},
                ["t.yml:4: escalation_policies[0].steps[0].targets[0].team: unknown field"],
                id="a target of an unknown kind",
            ),
            pytest.param(
                {"t.yml": policy("{escalate_after: 5m}")},
                [
                    "t.yml:4: escalation_policies[0].steps[0]: a step needs notify, targets or"
                    " both: say who is paged"
                ],
                id="a step naming nobody",
            ),
            pytest.param(
                {
                    "p.yml": "people: [{id: carl, name: Carl, time_zone: UTC}]\n",
                    "s.yml": SCHEDULE.replace("[ana, ben]", "[carl]"),
                    "t.yml": policy("targets: [{schedule: primary}, {person: carl}]"),
                },
                [
                    "p.yml:1: people[0].contact_methods: no contact methods: list at least one"
                    " (email, slack, webhook or pagerduty), or no page can reach them",
                    "t.yml:4: escalation_policies[0].steps[0]: reaches nobody: no channel, and"
                    " none of its people or schedule members has a contact method",
                ],
                id="a step whose people all lack contact methods reaches nobody",
            ),
            pytest.param(
                {
                    "s.yml": "schedules: [{name: commander, time_zone: UTC}]\n",
                    "t.yml": policy("targets: [{schedule: commander}]"),
                },
                [
                    "t.yml:4: escalation_policies[0].steps[0]: reaches nobody: no channel, and"
                    " none of its people or schedule members has a contact method",
                ],
                id="a step whose only schedule has no members reaches nobody",
            ),
            pytest.param(
                {
                    "s.yml": SCHEDULE,
                    "t.yml": policy("targets: [{schedule: primary}]", head="    repeat: 11"),
                },
                [
                    "t.yml:3: escalation_policies[0].repeat: Input should be less than or equal"
                    " to 10"
                ],
                id="repeat above 10",
            ),
            pytest.param(
                {
                    "s.yml": SCHEDULE,
                    "t.yml": policy(
                        "{targets: [{schedule: primary}], escalate_after: 5m}",
                        "notify: [pager]",
                        head="    repeat: 2",
                    ),
                },
                [
                    "t.yml:6: escalation_policies[0].steps[1]: escalate_after is required on the"
                    " last step when the policy repeats (the wait before the chain starts again)"
                ],
                id="a repeating policy without a wait after its last step",
            ),
            pytest.param(
                {
                    "s.yml": SCHEDULE,
                    "t.yml": policy("targets: [{schedule: primary}]", head="    ack_timeout: 0s"),
                },
                [
                    "t.yml:3: escalation_policies[0].ack_timeout: must be longer than 0s:"
                    " a zero window can never fire"
                ],
                id="zero ack timeout",
            ),
        ],
    )
    def test_error_names_file_line_and_field(
        self, tmp_path: Path, files: dict[str, str], expected: list[str]
    ) -> None:
        errors = oncall_errors_of(tmp_path, files)

        directory = tmp_path / "rules"
        assert errors == [line.format(directory=directory) for line in expected]

    def test_notify_alone_still_pages_its_channels(self, tmp_path: Path) -> None:
        directory = rules_dir(tmp_path, {"shared.yml": SHARED, "rules.yml": RULE})

        rules = load_ruleset(directory, NOW)

        assert rules.policies["oncall"] == EscalationPolicy("oncall", (EscalationStep(("pager",)),))


VALID = {
    "shared.yml": SHARED,
    "rules.yml": RULE,
    "people.yml": PEOPLE,
    "schedules.yml": """\
        schedules:
          - name: primary
            time_zone: Europe/Berlin
            layers:
              - name: weekly
                members: [ana, ben]
                shift: 1w
                handoff: "09:00"
                start: 2027-01-04
              - name: new-york-days
                members: [ben]
                shift: 12h
                handoff: "08:00"
                time_zone: America/New_York
                start: 2027-01-04
                restrictions:
                  - {days: [mon:fri], from: "08:00", to: "18:00"}
                  - {days: [saturday], from: "22:00", to: "24:00"}
            overrides:
              - {person: ana, start: "2027-03-06T09:00:00+01:00", end: "2027-03-07T09:00:00+01:00"}
    """,
    "policies.yml": """\
        escalation_policies:
          - name: tiered
            repeat: 2
            ack_timeout: 30m
            steps:
              - notify: [pager]
                targets: [{schedule: primary}, {channel: pager}]
                escalate_after: 5m
              - targets: [{person: ben}, {channel: pager}]
                escalate_after: 10m
    """,
}


class TestValidDirectory:
    def test_builds_schedules_people_and_policies(self, tmp_path: Path) -> None:
        rules = load_ruleset(rules_dir(tmp_path, VALID), NOW)

        new_york = ZoneInfo("America/New_York")
        assert rules.schedules == {
            "primary": Schedule(
                name="primary",
                time_zone=BERLIN,
                layers=(
                    Layer(
                        "weekly",
                        ("ana", "ben"),
                        timedelta(weeks=1),
                        time(9),
                        BERLIN,
                        date(2027, 1, 4),
                    ),
                    Layer(
                        "new-york-days",
                        ("ben",),
                        timedelta(hours=12),
                        time(8),
                        new_york,
                        date(2027, 1, 4),
                        (
                            Restriction(frozenset({0, 1, 2, 3, 4}), time(8), time(18)),
                            Restriction(frozenset({5}), time(22), time(0)),
                        ),
                    ),
                ),
                overrides=(
                    Override(
                        "ana",
                        datetime(2027, 3, 6, 8, tzinfo=UTC),
                        datetime(2027, 3, 7, 8, tzinfo=UTC),
                    ),
                ),
            )
        }
        assert rules.policies["tiered"] == EscalationPolicy(
            name="tiered",
            steps=(
                EscalationStep(("pager",), timedelta(minutes=5), schedules=("primary",)),
                EscalationStep(("pager",), timedelta(minutes=10), people=("ben",)),
            ),
            repeat=2,
            ack_timeout=timedelta(minutes=30),
        )
        assert sorted(rules.people) == ["ana", "ben"]
        assert rules.people["ben"].time_zone == "America/New_York"
        assert rules.warnings == ()

    def test_unnamed_layers_are_numbered(self, tmp_path: Path) -> None:
        files = {"shared.yml": SHARED, "rules.yml": RULE, "people.yml": PEOPLE, "s.yml": SCHEDULE}

        rules = load_ruleset(rules_dir(tmp_path, files), NOW)

        assert [layer.name for layer in rules.schedules["primary"].layers] == ["layer-1"]

    def test_the_schema_describes_the_new_sections(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["rules", "schema"]) == 0
        schema = capsys.readouterr().out

        for name in ("PersonSpec", "ScheduleSpec", "LayerSpec", "StepTargetSpec"):
            assert f'"{name}"' in schema
        assert '"from"' in schema
        assert '"ack_timeout"' in schema


BUSINESS_HOURS = {
    "shared.yml": SHARED,
    "rules.yml": RULE,
    "people.yml": PEOPLE,
    "s.yml": """\
        schedules:
          - name: office
            time_zone: Europe/Berlin
            layers:
              - members: [ana]
                shift: 1w
                handoff: "09:00"
                start: 2027-01-04
                restrictions: [{days: [mon:fri], from: "09:00", to: "17:00"}]
    """,
}


class TestGapWarnings:
    def test_names_the_first_gaps_and_counts_the_rest(self, tmp_path: Path) -> None:
        directory = rules_dir(tmp_path, BUSINESS_HOURS)

        warnings = [str(w) for w in load_ruleset(directory, NOW).warnings]

        where = f"{directory}/s.yml:2: schedules[0]: warning:"
        assert warnings == [
            f"{where} nobody is on call from 2027-03-01 17:00 to 2027-03-02 09:00 Europe/Berlin"
            " (schedule office)",
            f"{where} nobody is on call from 2027-03-02 17:00 to 2027-03-03 09:00 Europe/Berlin"
            " (schedule office)",
            f"{where} nobody is on call from 2027-03-03 17:00 to 2027-03-04 09:00 Europe/Berlin"
            " (schedule office)",
            f"{where} 7 more time(s) with nobody on call in the next 14 days (schedule office)",
        ]

    def test_a_rotation_starting_later_leaves_nobody_until_then(self, tmp_path: Path) -> None:
        later = SCHEDULE.replace("start: 2027-01-04", "start: 2027-04-05")
        files = {"shared.yml": SHARED, "rules.yml": RULE, "people.yml": PEOPLE, "s.yml": later}

        warnings = [str(w) for w in load_ruleset(rules_dir(tmp_path, files), NOW).warnings]

        assert [w.partition("warning: ")[2] for w in warnings] == [
            "nobody is on call from 2027-03-01 13:00 to at least 2027-03-15 13:00 Europe/Berlin"
            " (schedule primary)"
        ]

    def test_a_file_override_fills_a_gap(self, tmp_path: Path) -> None:
        weekend = {
            **BUSINESS_HOURS,
            "s.yml": BUSINESS_HOURS["s.yml"]
            .replace("restrictions: [{days: [mon:fri]", "restrictions: [{days: [mon:sun]")
            .rstrip(" ")
            + "            overrides:\n"
            '              - {person: ben, start: "2027-03-01T17:00:00+01:00",'
            ' end: "2027-03-16T09:00:00+01:00"}\n',
        }

        assert load_ruleset(rules_dir(tmp_path, weekend), NOW).warnings == ()

    def test_rules_check_prints_warnings_and_passes(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        directory = rules_dir(tmp_path, BUSINESS_HOURS)

        assert main(["rules", "check", str(directory)]) == 0

        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"{directory}/s.yml:2: schedules[0]: warning: nobody is on")
        assert lines[-1].startswith(f"{directory}: 1 rules, 1 channels, 1 escalation policies")
        assert lines[-1].endswith("warning(s): OK")

    def test_the_running_service_logs_them_and_reports_them_in_its_status(
        self, tmp_path: Path
    ) -> None:
        directory = rules_dir(tmp_path, BUSINESS_HOURS)
        live = LiveRules(directory, lambda _: {}, FakeClock(NOW).now)

        with capture_logs() as logs:
            reloader = RulesReloader(live, directory, Metrics())
            reloaded = reloader.reload("api")

        warned = [e for e in logs if e["event"] == "rules.warning"]
        assert [e["trigger"] for e in warned] == ["start"] * 4 + ["api"] * 4
        assert warned[0]["log_level"] == "warning"
        assert warned[0]["warning"] == live.status.warnings[0]
        assert reloaded.warnings == live.status.warnings
        assert "2027-03-01 17:00" in reloaded.warnings[0]


@cache
def shipped_schedules() -> Mapping[str, Schedule]:
    """The shipped schedules, loaded once for many examples."""
    return load_ruleset(SHIPPED_RULES, NOW).schedules


class TestShippedFiles:
    @pytest.mark.parametrize(
        "now",
        [
            pytest.param(datetime(2026, 12, 3, 7, 0, tzinfo=UTC), id="today"),
            pytest.param(datetime(2027, 3, 27, 23, 30, tzinfo=UTC), id="spring DST night"),
            pytest.param(datetime(2027, 10, 30, 23, 30, tzinfo=UTC), id="autumn DST night"),
            pytest.param(datetime(2030, 2, 28, 8, 59, tzinfo=UTC), id="years on"),
        ],
    )
    def test_load_without_gaps(self, now: datetime) -> None:
        rules = load_ruleset(SHIPPED_RULES, now)

        assert rules.warnings == ()
        for schedule in rules.schedules.values():
            assert gaps(schedule, now, now + timedelta(days=60)) == [], schedule.name

    @settings(max_examples=100, deadline=None, database=None)
    @given(
        now=st.datetimes(  # naive bounds are how Hypothesis takes them; the zone comes after
            min_value=datetime(2026, 1, 6),  # noqa: DTZ001
            max_value=datetime(2040, 1, 1),  # noqa: DTZ001
            timezones=st.just(UTC),
        )
    )
    def test_someone_is_on_call_in_every_schedule_from_any_date(self, now: datetime) -> None:
        for schedule in shipped_schedules().values():
            assert gaps(schedule, now, now + GAP_HORIZON) == [], schedule.name

    def test_the_policies_page_the_schedules_and_keep_a_shared_channel(self) -> None:
        rules = load_ruleset(SHIPPED_RULES, NOW)

        for name in ("shop-oncall", "database-oncall"):
            steps = rules.policies[name].steps
            assert [step.schedules for step in steps] == [("primary",), ("secondary",)], name
            assert all(step.channels for step in steps), name
        assert all(person.contact_methods[0].type == "email" for person in rules.people.values())
