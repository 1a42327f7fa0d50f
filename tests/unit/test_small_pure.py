"""Small pure units: durations, rule text templates, escalation policies, HTTP status decisions,
engine pacing and signal retries."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from detector.domain.durations import Duration, format_duration, parse_duration
from detector.engine.cycle import STORM_PACE, CycleReport, pause_after
from detector.engine.signals import SignalBatchResult, retry_after
from detector.ruleset.templates import check_template, render
from detector.store.intake_log import Expansion
from detector.store.signals import InsertResult
from responders.channels.protocol import classify_status
from responders.escalation import EscalationPolicy, EscalationStep

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

DURATION = TypeAdapter(Duration)


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param("90s", 90 * SEC, id="seconds"),
            pytest.param("5m", 5 * MIN, id="minutes"),
            pytest.param("1h30m", HOUR + 30 * MIN, id="compound"),
            pytest.param("1d2h3m4s", DAY + 2 * HOUR + 3 * MIN + 4 * SEC, id="all units"),
            pytest.param("2w", 14 * DAY, id="weeks"),
            pytest.param("250ms", timedelta(milliseconds=250), id="milliseconds"),
            pytest.param("1m500ms", MIN + timedelta(milliseconds=500), id="minutes and ms"),
            pytest.param("0s", timedelta(0), id="zero"),
            pytest.param(" 5m\n", 5 * MIN, id="surrounding whitespace"),
        ],
    )
    def test_valid(self, text: str, expected: timedelta) -> None:
        assert parse_duration(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("5x", id="unknown unit"),
            pytest.param("5", id="no unit"),
            pytest.param("m", id="no number"),
            pytest.param("1.5h", id="fraction"),
            pytest.param("-5m", id="negative"),
            pytest.param("5m30", id="trailing number"),
            pytest.param("5 m", id="space inside"),
            pytest.param("5M", id="upper case unit"),
        ],
    )
    def test_invalid_names_the_text_and_the_fix(self, text: str) -> None:
        with pytest.raises(
            ValueError, match="use a number with a unit, like 30s, 5m or 1h30m"
        ) as e:
            parse_duration(text)

        assert repr(text) in str(e.value)

    @pytest.mark.parametrize("text", [pytest.param("", id="empty"), pytest.param("  ", id="blank")])
    def test_empty(self, text: str) -> None:
        with pytest.raises(ValueError, match="empty duration"):
            parse_duration(text)


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("delta", "expected"),
        [
            pytest.param(timedelta(0), "0s", id="zero"),
            pytest.param(90 * SEC, "1m30s", id="seconds carry into minutes"),
            pytest.param(HOUR + 30 * MIN, "1h30m", id="no zero parts"),
            pytest.param(8 * DAY + SEC, "8d1s", id="days, not weeks"),
            pytest.param(15 * MIN, "15m", id="minutes"),
        ],
    )
    def test_format(self, delta: timedelta, expected: str) -> None:
        assert format_duration(delta) == expected

    @pytest.mark.parametrize("text", ["30s", "5m", "1h30m", "2d3h", "1w"])
    def test_round_trip(self, text: str) -> None:
        delta = parse_duration(text)

        assert parse_duration(format_duration(delta)) == delta

    @pytest.mark.parametrize("text", ["1500ms", "500ms"])
    def test_round_trip_sub_second(self, text: str) -> None:
        delta = parse_duration(text)

        assert parse_duration(format_duration(delta)) == delta


class TestDurationField:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            pytest.param("5m", 5 * MIN, id="text with unit"),
            pytest.param(30, 30 * SEC, id="integer seconds"),
            pytest.param(1.5, 1.5 * SEC, id="float seconds"),
            pytest.param(MIN, MIN, id="timedelta"),
        ],
    )
    def test_accepts(self, value: object, expected: timedelta) -> None:
        assert DURATION.validate_python(value) == expected

    def test_rejects_bad_text_with_the_parse_reason(self) -> None:
        with pytest.raises(ValidationError, match="invalid duration '5x'"):
            DURATION.validate_python("5x")

    def test_serialises_as_rule_file_text(self) -> None:
        assert DURATION.dump_python(HOUR + 30 * MIN) == "1h30m"

    @pytest.mark.parametrize("value", ["30", "30.0"])
    def test_accepts_plain_seconds_as_text(self, value: str) -> None:
        assert DURATION.validate_python(value) == 30 * SEC


class TestCheckTemplate:
    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("Checkout errors", id="no placeholder"),
            pytest.param("Pool exhausted on {{ labels.cluster }}", id="label"),
            pytest.param("{{annotations.summary}}", id="annotation without spaces"),
            pytest.param("{{ $labels.cluster }}", id="prometheus style $labels"),
            pytest.param("{{ labels.db }} on {{ labels.cluster }}", id="two placeholders"),
            pytest.param("", id="empty"),
        ],
    )
    def test_valid_is_returned_unchanged(self, text: str) -> None:
        assert check_template(text) == text

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            pytest.param(
                "{{ .Labels.cluster }}",
                "unknown placeholder '{{ .Labels.cluster }}': "
                "use {{ labels.NAME }} or {{ annotations.NAME }}",
                id="alertmanager go template",
            ),
            pytest.param("{{ labels }}", "unknown placeholder '{{ labels }}'", id="no name"),
            pytest.param(
                "{{ labels.cluster | upper }}",
                "unknown placeholder '{{ labels.cluster | upper }}'",
                id="filters are not supported",
            ),
            pytest.param("{{ }}", "unknown placeholder '{{ }}'", id="empty placeholder"),
            pytest.param("Pool on {{ labels.cluster", "unclosed '{{' in template", id="unclosed"),
        ],
    )
    def test_invalid_names_the_placeholder(self, text: str, reason: str) -> None:
        with pytest.raises(ValueError, match=r"^(unknown|unclosed)") as raised:
            check_template(text)

        assert str(raised.value).startswith(reason)


class TestRender:
    LABELS = {"cluster": "eu-prod-1", "database": "orders"}  # noqa: RUF012  # read-only table
    ANNOTATIONS = {"summary": "no idle server connection"}  # noqa: RUF012  # read-only table

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param("Pool on {{ labels.cluster }}", "Pool on eu-prod-1", id="label"),
            pytest.param("{{annotations.summary}}", "no idle server connection", id="annotation"),
            pytest.param(
                "{{ labels.database }} on {{ $labels.cluster }}",
                "orders on eu-prod-1",
                id="two placeholders",
            ),
            pytest.param("[{{ labels.missing }}]", "[]", id="missing label renders empty"),
            pytest.param("{{ .Labels.x }}", "{{ .Labels.x }}", id="unknown kept literally"),
            pytest.param("Checkout errors", "Checkout errors", id="plain text"),
        ],
    )
    def test_render(self, text: str, expected: str) -> None:
        assert render(text, self.LABELS, self.ANNOTATIONS) == expected


POLICY = EscalationPolicy(
    "oncall",
    (
        EscalationStep(("pager",), escalate_after=5 * MIN),
        EscalationStep(("backup", "pager"), escalate_after=10 * MIN),
        EscalationStep(("manager",)),
    ),
)


class TestEscalationPolicy:
    @pytest.mark.parametrize(
        ("step", "expected"),
        [
            pytest.param(0, ("pager",), id="first"),
            pytest.param(1, ("backup", "pager"), id="second"),
            pytest.param(2, ("manager",), id="last"),
            pytest.param(3, (), id="past the end"),
            pytest.param(-1, (), id="negative"),
        ],
    )
    def test_channels_at(self, step: int, expected: tuple[str, ...]) -> None:
        assert POLICY.channels_at(step) == expected

    @pytest.mark.parametrize(
        ("policy", "step", "expected"),
        [
            pytest.param(POLICY, 0, T0 + 5 * MIN, id="after step 0"),
            pytest.param(POLICY, 1, T0 + 10 * MIN, id="after step 1"),
            pytest.param(POLICY, 2, None, id="last step never escalates"),
            pytest.param(
                EscalationPolicy("p", (EscalationStep(("a",)), EscalationStep(("b",)))),
                0,
                None,
                id="step without escalate_after",
            ),
        ],
    )
    def test_next_escalation(
        self, policy: EscalationPolicy, step: int, expected: datetime | None
    ) -> None:
        assert policy.next_escalation(step, T0) == expected

    def test_json_snapshot_round_trips(self) -> None:
        snapshot = json.loads(json.dumps(POLICY.to_json()))

        assert snapshot["steps"][0] == {
            "channels": ["pager"],
            "people": [],
            "schedules": [],
            "escalate_after": 300.0,
        }
        assert snapshot["steps"][2]["escalate_after"] is None
        assert EscalationPolicy.from_json(snapshot) == POLICY

    def test_a_snapshot_from_before_people_and_schedules_still_reads(self) -> None:
        old = {"name": "p", "steps": [{"channels": ["pager"], "escalate_after": None}]}

        policy = EscalationPolicy.from_json(old)

        assert policy == EscalationPolicy("p", (EscalationStep(("pager",)),))
        assert (policy.repeat, policy.ack_timeout) == (0, None)


class TestClassifyStatus:
    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_2xx_is_delivered(self, status: int) -> None:
        assert classify_status(status) is None

    @pytest.mark.parametrize(
        ("status", "reason", "retryable"),
        [
            pytest.param(429, "rate_limited", True, id="429 rate limited"),
            pytest.param(408, "server_error", True, id="408 request timeout"),
            pytest.param(425, "server_error", True, id="425 too early"),
            pytest.param(500, "server_error", True, id="500"),
            pytest.param(502, "server_error", True, id="502 bad gateway"),
            pytest.param(503, "server_error", True, id="503 unavailable"),
            pytest.param(400, "rejected", False, id="400 bad request"),
            pytest.param(401, "rejected", False, id="401 unauthorized"),
            pytest.param(403, "rejected", False, id="403 forbidden"),
            pytest.param(404, "rejected", False, id="404 not found"),
            pytest.param(410, "rejected", False, id="410 gone"),
            pytest.param(301, "rejected", False, id="301 redirect not followed"),
        ],
    )
    def test_failures(self, status: int, reason: str, retryable: bool) -> None:
        error = classify_status(status)

        assert error is not None
        assert (error.reason, error.retryable) == (reason, retryable)
        assert str(error) == f"{reason}: HTTP {status}"


def _batch(
    processed: int,
    *,
    arrived: int | None = None,
    behind: bool = False,
    sliced: bool = False,
    storming: frozenset[str] = frozenset(),
) -> SignalBatchResult:
    """A signal stage's report: ``processed`` signals, ``arrived`` of them (all, by default)
    new from the intake log, the rest retried from the queue."""
    new = processed if arrived is None else arrived
    return SignalBatchResult(
        expansion=Expansion(stored=InsertResult(new, 0)),
        outcomes=Counter({"matched": processed}),
        behind=behind,
        sliced=sliced,
        storming=storming,
    )


STORM = frozenset({"checkout-failing-db-pool-exhausted"})


class TestPauseAfter:
    @pytest.mark.parametrize(
        ("batch", "elapsed", "expected"),
        [
            pytest.param(_batch(50), 0.03, 0.07, id="a batch worth it waits out the window"),
            pytest.param(_batch(500), 0.1, 0.0, id="a cycle as long as the window goes on"),
            pytest.param(_batch(500), 0.25, 0.0, id="a slow cycle goes on"),
            pytest.param(
                _batch(500, behind=True), 0.01, 0.0, id="more queued than a batch: no wait"
            ),
            pytest.param(
                _batch(60, arrived=0, sliced=True),
                0.01,
                0.0,
                id="a backlog, no new alert: worked off at once",
            ),
            pytest.param(
                _batch(500, sliced=True, storming=STORM, behind=True),
                0.4,
                0.4 * STORM_PACE,
                id="a backlog while a storm pours in: paced by the cycle's time",
            ),
            pytest.param(
                _batch(500, sliced=True, storming=STORM),
                0.03,
                0.1,
                id="a quick cycle in a storm waits the window at least",
            ),
            pytest.param(
                _batch(60, arrived=0, sliced=True, storming=STORM),
                0.4,
                0.0,
                id="a storm over: its backlog worked off at once",
            ),
            pytest.param(_batch(5), 0.002, 0.008, id="a trickle waits a tenth of the window"),
            pytest.param(_batch(1), 0.01, 0.0, id="one new alert: the next cycle at once"),
        ],
    )
    def test_pause(self, batch: SignalBatchResult, elapsed: float, expected: float) -> None:
        report = CycleReport(signals=batch)
        assert pause_after(report, elapsed, window=0.1) == pytest.approx(expected)

    def test_a_storm_unpaced_where_the_engine_has_cpus_of_its_own(self) -> None:
        storm = CycleReport(signals=_batch(500, sliced=True, storming=STORM, behind=True))
        assert pause_after(storm, 0.4, window=0.1, pace=0) == 0.0

    def test_a_rest_never_outlasts_the_idle_wait(self) -> None:
        storm = CycleReport(signals=_batch(500, sliced=True, storming=STORM))
        assert pause_after(storm, 0.2, window=0.1, cap=1.0) == pytest.approx(0.2 * STORM_PACE)
        assert pause_after(storm, 0.5, window=0.1, cap=1.0) == 1.0  # the idle interval
        flood = CycleReport(signals=_batch(60))
        assert pause_after(flood, 0.0, window=0.1, cap=0.01) == 0.01  # a timer due sooner

    def test_no_window_never_waits(self) -> None:
        assert pause_after(CycleReport(), 0.0, window=0.0) == 0.0


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("attempts", "wait"),
        [
            (1, None),
            (3, None),
            (4, 5 * SEC),
            (5, 10 * SEC),
            (6, 20 * SEC),
            (9, 160 * SEC),
            (10, 5 * MIN),
            (10_000, 5 * MIN),
        ],
    )
    def test_quick_tries_then_doubling_up_to_five_minutes(
        self, attempts: int, wait: timedelta | None
    ) -> None:
        assert retry_after(attempts) == wait
