"""Rule conditions: when matching alerts count as an incident, driven by an explicit clock.

``evaluate`` is pure, so most tests call it directly. Stories play through the rule-test
simulator, which drives the engine's own pure functions (``domain.grouping``): signals are handed
over at their arrival time, each check is made when it falls due (a check the state has moved on
from is superseded, as in the engine) and the group's incident opens, takes alerts and resolves
as in the service. Every story runs twice, once keeping the state in memory and once
round-tripping it through JSON between calls (the engine stores it as jsonb), and both runs must
decide exactly the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.domain.model import AlertStatus, Signal, Source
from detector.ruleset.conditions import ConditionResult, State, evaluate
from detector.ruleset.rules import RuleSet
from detector.ruleset.schema import RuleSpec
from detector.ruletest.simulator import Input, Simulation

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED


# --- rules, as a rule file declares them -------------------------------------------------------


def rule(name: str, **condition: Any) -> RuleSpec:
    """A rule of the eu-1 shop with one condition (keys as written in a rule file)."""
    spec = {
        "name": name,
        "match": ['alertname=~".+"'],
        "group_by": ["cluster"],
        "severity": "critical",
        "title": f"{name} on {{{{ labels.cluster }}}}",
        **condition,
    }
    return RuleSpec.model_validate(spec)


FOR = rule("slow-checkout", **{"for": "5m"})
THRESHOLD = rule("probe-failing", threshold={"count": 2, "within": "5m", "distinct": "location"})
THRESHOLD_COUNT = rule("payment-errors", threshold={"count": 3, "within": "5m"})
ABSENT = rule(
    "failover-failed",
    absent={"expect": ['alertname="PostgresFailoverHappened"'], "within": "60s"},
)
HEARTBEAT = rule("monitoring-heartbeat", heartbeat={"within": "5m"})
ALL_OF = RuleSpec.model_validate(
    {
        "name": "checkout-down-db-pool",
        "group_by": ["cluster"],
        "all_of": [
            ['alertname="PgBouncerPoolSaturated"'],
            ['alertname="CheckoutErrorSpike"'],
        ],
        "severity": "critical",
        "title": "Checkout failing: database pool exhausted",
    }
)


# --- signals, as intake hands them over ----------------------------------------------------------


def alert(
    alertname: str, fingerprint: str, at: datetime, starts_at: datetime, **labels: str
) -> Signal:
    """A firing alert of the eu-1 cluster, received at ``at``."""
    return Signal(
        source=Source.ALERTMANAGER,
        name=alertname,
        fingerprint=fingerprint,
        status=FIRING,
        starts_at=starts_at,
        ends_at=None,
        labels={"alertname": alertname, "cluster": "eu-1", **labels},
        annotations={"summary": f"{alertname} {fingerprint}"},
        received_at=at,
    )


def resolved(signal: Signal, at: datetime) -> Signal:
    """The resolved notification of ``signal``'s occurrence, received at ``at``."""
    return replace(signal, status=RESOLVED, ends_at=at, received_at=at)


def slow(fingerprint: str, at: datetime, starts_at: datetime | None = None) -> Signal:
    return alert("CheckoutLatencyP99High", fingerprint, at, starts_at or at, service=fingerprint)


def probe(location: str, at: datetime, starts_at: datetime | None = None) -> Signal:
    labels = {"location": location} if location else {}
    fingerprint = f"probe-{location or 'nowhere'}"
    return alert("SyntheticCheckoutFailed", fingerprint, at, starts_at or at, **labels)


def payment(fingerprint: str, at: datetime, starts_at: datetime | None = None) -> Signal:
    return alert("PaymentFailed", fingerprint, at, starts_at or at, psp=fingerprint)


def no_primary(at: datetime, instance: str = "db-1") -> Signal:
    return alert("PostgresNoPrimary", instance, at, at, instance=instance)


def no_primary_again(at: datetime) -> Signal:
    """db-1's NoPrimary alert sent again: same occurrence (start T0), later arrival."""
    return replace(no_primary(T0), received_at=at)


def failover(at: datetime) -> Signal:
    return alert("PostgresFailoverHappened", "failover", at, at)


def watchdog(at: datetime, starts_at: datetime = T0) -> Signal:
    return alert("Watchdog", "watchdog", at, starts_at)


def pool(at: datetime, instance: str = "pgbouncer-1") -> Signal:
    return alert("PgBouncerPoolSaturated", instance, at, at, instance=instance)


def spike(at: datetime) -> Signal:
    return alert("CheckoutErrorSpike", "checkout-errors", at, at)


# --- the engine, as the rule-test simulator plays it, for one (rule, group) ---------------------


@dataclass(frozen=True, slots=True)
class Arrive:
    """Signals the signal stage hands to the condition in one batch, at ``at``."""

    at: datetime
    signals: tuple[Signal, ...]


def arrive(*signals: Signal) -> Arrive:
    """One batch, processed when its last signal arrived."""
    return Arrive(max(s.received_at for s in signals), signals)


@dataclass(frozen=True, slots=True)
class Resend:
    """A re-send of a stored alert: the inbox refreshes its last arrival, evaluate never sees it."""

    at: datetime
    fingerprint: str


Event = Arrive | Resend


@dataclass(frozen=True, slots=True)
class Call:
    """One evaluate call: when, why (``signals`` or ``timer``) and what it concluded."""

    at: datetime
    via: str
    result: ConditionResult


def run(rule: RuleSpec, events: Sequence[Event], until: datetime, durable: bool) -> list[Call]:
    """The condition's calls while the simulator plays ``events`` and the checks they ask for
    (``durable``: the state stored as JSON between calls)."""
    rules = RuleSet(rules={rule.name: rule}, components={}, channels={}, policies={})
    simulation = Simulation(rules, state_as_json=durable)
    simulation.play(inputs(events), until)
    return [
        Call(check.at, "signals" if check.signals else "timer", check.result)
        for check in simulation.checks
    ]


def inputs(events: Sequence[Event]) -> Iterator[tuple[datetime, Input]]:
    """Each batch delivered at its time; a re-send delivers the alert's last firing signal again."""
    firing: dict[str, Signal] = {}
    for event in events:
        if isinstance(event, Resend):
            batch: tuple[Signal, ...] = (replace(firing[event.fingerprint], received_at=event.at),)
        else:
            batch = event.signals
            firing.update({s.fingerprint: s for s in batch if s.status is FIRING})
        yield event.at, delivered(batch)


def delivered(batch: tuple[Signal, ...]) -> Input:
    return lambda simulation, now: simulation.deliver(batch, now)


def simulate(rule: RuleSpec, events: Sequence[Event], until: datetime) -> list[Call]:
    """Run the story; a restart between any two calls (state through JSON) changes nothing."""
    in_memory = run(rule, events, until, durable=False)
    assert run(rule, events, until, durable=True) == in_memory
    return in_memory


def label(signal: Signal) -> str:
    return signal.fingerprint if signal.status is FIRING else f"{signal.fingerprint} resolved"


def releases(trace: Sequence[Call]) -> list[tuple[datetime, set[str]]]:
    """When something was released to the incident decision, and what."""
    return [(c.at, {label(s) for s in c.result.release}) for c in trace if c.result.release]


def released_ever(trace: Sequence[Call]) -> set[str]:
    return {label(s) for c in trace for s in c.result.release}


def check_ats(trace: Sequence[Call]) -> list[datetime | None]:
    return [c.result.check_at for c in trace]


def state_after(rule: RuleSpec, *batches: Sequence[Signal]) -> State:
    """The stored state after evaluating each batch when its last signal arrived."""
    state: State = {}
    for batch in batches:
        now = max(s.received_at for s in batch)
        state = json.loads(json.dumps(evaluate(rule, state, batch, now, False).state))
    return state


# --- for --------------------------------------------------------------------------------------


class TestFor:
    """``for: 5m``: an alert must stay firing for 5 minutes after it arrived."""

    @pytest.mark.parametrize(
        ("events", "expected"),
        [
            pytest.param(
                [arrive(slow("a", T0))],
                [(T0 + 5 * MIN, {"a"})],
                id="held for 5m opens at arrival+5m via the check",
            ),
            pytest.param(
                [arrive(slow("a", T0)), arrive(resolved(slow("a", T0), T0 + 4 * MIN))],
                [],
                id="resolving before 5m releases nothing",
            ),
            pytest.param(
                [
                    arrive(slow("a", T0)),
                    arrive(resolved(slow("a", T0), T0 + 2 * MIN)),
                    arrive(slow("a", T0 + 3 * MIN)),
                ],
                [(T0 + 8 * MIN, {"a"})],
                id="re-fire after resolving starts the clock again",
            ),
            pytest.param(
                [arrive(slow("a", T0)), arrive(slow("a", T0 + 2 * MIN, starts_at=T0))],
                [(T0 + 5 * MIN, {"a"})],
                id="same occurrence again keeps its first arrival",
            ),
            pytest.param(
                [arrive(slow("a", T0)), arrive(slow("b", T0 + 2 * MIN))],
                [(T0 + 5 * MIN, {"a", "b"})],
                id="second alert is released with the first when it ripens",
            ),
            pytest.param(
                [
                    arrive(slow("a", T0)),
                    arrive(slow("b", T0 + 2 * MIN)),
                    arrive(resolved(slow("a", T0), T0 + 3 * MIN)),
                ],
                [(T0 + 7 * MIN, {"b"})],
                id="first resolving leaves the second to ripen on its own",
            ),
            pytest.param(
                [arrive(slow("a", T0), slow("b", T0 + SEC))],
                [(T0 + 5 * MIN, {"a", "b"})],
                id="one batch of two alerts",
            ),
        ],
    )
    def test_opens_only_after_held_for_the_duration(
        self, events: list[Event], expected: list[tuple[datetime, set[str]]]
    ) -> None:
        trace = simulate(FOR, events, until=T0 + 30 * MIN)

        assert releases(trace) == expected
        assert trace[-1].result.state == {}

    @pytest.mark.parametrize(
        ("now", "expected_note", "expected_release", "expected_check_at"),
        [
            pytest.param(T0, "waiting", (), T0 + 5 * MIN, id="on arrival: check at arrival+5m"),
            pytest.param(
                T0 + 5 * MIN - SEC, "waiting", (), T0 + 5 * MIN, id="one second short: waits"
            ),
            pytest.param(
                T0 + 5 * MIN, "lasted_long_enough", ("a",), None, id="exactly arrival+5m: opens"
            ),
            pytest.param(
                T0 + 7 * MIN, "lasted_long_enough", ("a",), None, id="late check: still opens"
            ),
        ],
    )
    def test_check_at_exactly_first_arrival_plus_duration(
        self,
        now: datetime,
        expected_note: str,
        expected_release: tuple[str, ...],
        expected_check_at: datetime | None,
    ) -> None:
        state = state_after(FOR, [slow("a", T0)])

        result = evaluate(FOR, state, [], now, incident_open=False)

        assert result.note == expected_note
        assert tuple(label(s) for s in result.release) == expected_release
        assert result.check_at == expected_check_at

    def test_released_signal_is_the_one_that_arrived(self) -> None:
        first = slow("a", T0)

        trace = simulate(FOR, [arrive(first)], until=T0 + 5 * MIN)

        assert trace[-1].result.release == (first,)

    def test_two_arrivals_check_at_follows_the_earliest_still_pending(self) -> None:
        a, b = slow("a", T0), slow("b", T0 + 2 * MIN)
        events = [arrive(a), arrive(b), arrive(resolved(a, T0 + 3 * MIN))]

        trace = simulate(FOR, events, until=T0 + 10 * MIN)
        stale = evaluate(FOR, trace[2].result.state, [], T0 + 5 * MIN, incident_open=False)

        assert [(c.at, c.via) for c in trace] == [
            (T0, "signals"),
            (T0 + 2 * MIN, "signals"),
            (T0 + 3 * MIN, "signals"),
            (T0 + 7 * MIN, "timer"),
        ], "a's check at T0+5m is superseded"
        assert check_ats(trace) == [T0 + 5 * MIN, T0 + 5 * MIN, T0 + 7 * MIN, None]
        assert (stale.release, stale.check_at) == ((), T0 + 7 * MIN), (
            "a's stale check, were it made, decides nothing and keeps b's"
        )
        assert releases(trace) == [(T0 + 7 * MIN, {"b"})]

    def test_resolution_before_the_duration_clears_the_state(self) -> None:
        a = slow("a", T0)

        trace = simulate(FOR, [arrive(a), arrive(resolved(a, T0 + MIN))], until=T0 + 10 * MIN)
        stale = evaluate(FOR, trace[-1].result.state, [], T0 + 5 * MIN, incident_open=False)

        assert [(c.result.note, c.result.state) for c in trace[1:]] == [("waiting", {})]
        assert trace[-1].result.check_at is None, "the check at T0+5m is superseded"
        assert (stale.note, stale.state, stale.check_at) == ("waiting", {}, None), (
            "the stale check, were it made"
        )

    def test_resolution_received_after_the_deadline_still_opens(self) -> None:
        a = slow("a", T0)
        late = T0 + 5 * MIN + SEC

        result = evaluate(FOR, state_after(FOR, [a]), [resolved(a, late)], late, False)

        assert "a" in {label(s) for s in result.release}


# --- threshold ----------------------------------------------------------------------------------


class TestThreshold:
    """``threshold``: at least ``count`` arrivals (or distinct label values) within a window."""

    @pytest.mark.parametrize(
        ("rule_spec", "events", "expected"),
        [
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0)), arrive(probe("iad", T0 + MIN))],
                [(T0 + MIN, {"probe-fra", "probe-iad"})],
                id="distinct: two locations within 5m open at the second",
            ),
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0)), arrive(probe("fra", T0 + MIN))],
                [],
                id="distinct: one location twice is one value",
            ),
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0)), arrive(probe("", T0 + MIN))],
                [(T0 + MIN, {"probe-fra", "probe-nowhere"})],
                id="distinct: a missing label is the empty value",
            ),
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0), probe("iad", T0))],
                [(T0, {"probe-fra", "probe-iad"})],
                id="distinct: both in one batch",
            ),
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0)), arrive(probe("iad", T0 + 5 * MIN - SEC))],
                [(T0 + 5 * MIN - SEC, {"probe-fra", "probe-iad"})],
                id="first arrival one second inside the window still counts",
            ),
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0)), arrive(probe("iad", T0 + 5 * MIN))],
                [],
                id="first arrival exactly 5m old has left the window",
            ),
            pytest.param(
                THRESHOLD,
                [
                    arrive(probe("fra", T0)),
                    arrive(probe("iad", T0 + 6 * MIN)),
                    arrive(probe("fra", T0 + 12 * MIN)),
                ],
                [],
                id="arrivals 6m apart never share a window",
            ),
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0)), arrive(resolved(probe("iad", T0), T0 + MIN))],
                [],
                id="a resolved signal does not count",
            ),
            pytest.param(
                THRESHOLD,
                [
                    arrive(probe("fra", T0)),
                    arrive(resolved(probe("fra", T0), T0 + MIN)),
                    arrive(probe("iad", T0 + 2 * MIN)),
                ],
                [(T0 + 2 * MIN, {"probe-fra", "probe-iad"})],
                id="resolving does not take back an arrival",
            ),
            pytest.param(
                THRESHOLD_COUNT,
                [
                    arrive(payment("adyen", T0)),
                    arrive(payment("stripe", T0 + MIN)),
                    arrive(payment("paypal", T0 + 2 * MIN)),
                ],
                [(T0 + 2 * MIN, {"adyen", "stripe", "paypal"})],
                id="count: three arrivals within 5m",
            ),
            pytest.param(
                THRESHOLD_COUNT,
                [arrive(payment("adyen", T0)), arrive(payment("stripe", T0 + MIN))],
                [],
                id="count: two of three",
            ),
            pytest.param(
                THRESHOLD_COUNT,
                [
                    arrive(payment("adyen", T0)),
                    arrive(payment("adyen", T0 + MIN)),
                    arrive(payment("adyen", T0 + 2 * MIN)),
                ],
                [(T0 + 2 * MIN, {"adyen"})],
                id="count: an alert re-firing counts again",
            ),
        ],
    )
    def test_counts_arrivals_within_the_window(
        self,
        rule_spec: RuleSpec,
        events: list[Event],
        expected: list[tuple[datetime, set[str]]],
    ) -> None:
        trace = simulate(rule_spec, events, until=T0 + 30 * MIN)

        assert releases(trace) == expected
        assert check_ats(trace) == [None] * len(trace), "windows age lazily, never by a timer"

    def test_releases_each_occurrence_once_with_its_own_start(self) -> None:
        events = [arrive(payment("adyen", T0 + i * MIN)) for i in range(3)]

        trace = simulate(THRESHOLD_COUNT, events, until=T0 + 5 * MIN)

        assert [s.occurrence for s in trace[-1].result.release] == [
            ("adyen", T0),
            ("adyen", T0 + MIN),
            ("adyen", T0 + 2 * MIN),
        ]

    def test_state_is_cleared_once_released(self) -> None:
        state = state_after(THRESHOLD, [probe("fra", T0)])
        assert len(state["events"]) == 1

        met = evaluate(THRESHOLD, state, [probe("iad", T0 + MIN)], T0 + MIN, False)
        after = evaluate(THRESHOLD, met.state, [probe("ams", T0 + 2 * MIN)], T0 + 2 * MIN, False)

        assert (met.note, met.state) == ("threshold_met", {})
        assert after.note == "below_threshold", "counting starts over after a release"
        assert [e["value"] for e in after.state["events"]] == ["ams"]

    def test_events_that_left_the_window_are_dropped_from_the_state(self) -> None:
        state = state_after(THRESHOLD, [probe("fra", T0)], [probe("fra", T0 + 4 * MIN)])

        result = evaluate(THRESHOLD, state, [probe("fra", T0 + 6 * MIN)], T0 + 6 * MIN, False)

        assert [e["at"] for e in result.state["events"]] == [
            (T0 + 4 * MIN).isoformat(),
            (T0 + 6 * MIN).isoformat(),
        ]

    def test_one_batch_spanning_more_than_the_window_does_not_count_together(self) -> None:
        batch = [probe("fra", T0), probe("iad", T0 + 6 * MIN)]

        result = evaluate(THRESHOLD, {}, batch, T0 + 6 * MIN, False)

        assert result.note == "below_threshold"


# --- absent -------------------------------------------------------------------------------------


class TestAbsent:
    """``absent``: after PostgresNoPrimary, PostgresFailoverHappened must follow within 60s."""

    @pytest.mark.parametrize(
        ("events", "expected"),
        [
            pytest.param(
                [arrive(no_primary(T0)), arrive(failover(T0 + 30 * SEC))],
                [],
                id="expected within time: nothing",
            ),
            pytest.param(
                [arrive(no_primary(T0)), arrive(failover(T0 + 60 * SEC - SEC))],
                [],
                id="expected one second before the deadline: nothing",
            ),
            pytest.param(
                [arrive(no_primary(T0))],
                [(T0 + 60 * SEC, {"db-1"})],
                id="expected never arrives: opens at trigger+60s via the check",
            ),
            pytest.param(
                [arrive(no_primary(T0)), arrive(resolved(failover(T0), T0 + 30 * SEC))],
                [(T0 + 60 * SEC, {"db-1"})],
                id="a resolved expected alert does not count",
            ),
            pytest.param(
                [arrive(no_primary(T0)), arrive(resolved(no_primary(T0), T0 + 30 * SEC))],
                [],
                id="trigger resolving before the deadline disarms",
            ),
            pytest.param(
                [arrive(failover(T0)), arrive(no_primary(T0 + 10 * SEC))],
                [],
                id="expected delivered first covers a trigger within the window",
            ),
            pytest.param(
                [arrive(failover(T0)), arrive(no_primary(T0 + 60 * SEC))],
                [(T0 + 120 * SEC, {"db-1"})],
                id="expected a whole window before the trigger does not cover it",
            ),
            pytest.param(
                [arrive(no_primary(T0), failover(T0 + SEC))],
                [],
                id="trigger then expected in one batch: nothing",
            ),
            pytest.param(
                [arrive(no_primary(T0)), arrive(no_primary_again(T0 + 10 * SEC))],
                [(T0 + 60 * SEC, {"db-1"})],
                id="trigger sent again keeps its first arrival",
            ),
        ],
    )
    def test_expected_alert_within_time(
        self, events: list[Event], expected: list[tuple[datetime, set[str]]]
    ) -> None:
        trace = simulate(ABSENT, events, until=T0 + 10 * MIN)

        assert releases(trace) == expected
        assert "pending" not in trace[-1].result.state, "nothing is left armed"

    def test_expected_stands_down_and_the_stale_check_decides_nothing(self) -> None:
        trace = simulate(
            ABSENT, [arrive(no_primary(T0)), arrive(failover(T0 + 30 * SEC))], until=T0 + 5 * MIN
        )

        stale = evaluate(ABSENT, trace[-1].result.state, [], T0 + 60 * SEC, incident_open=False)

        assert [(c.at, c.via, c.result.note) for c in trace] == [
            (T0, "signals", "waiting_for_expected"),
            (T0 + 30 * SEC, "signals", "expected_arrived"),
        ], "the check at T0+60s is superseded"
        assert check_ats(trace) == [T0 + 60 * SEC, None]
        assert (stale.note, stale.release, stale.check_at) == ("expected_arrived", (), None), (
            "the stale check, were it made"
        )

    def test_expected_before_the_trigger_covers_it_for_one_window(self) -> None:
        # Alertmanager sends each group on its own timers, so the follow-up can come first.
        early = evaluate(ABSENT, {}, [failover(T0)], T0, False)
        covered = evaluate(ABSENT, early.state, [no_primary(T0 + 10 * SEC)], T0 + 10 * SEC, False)
        later = no_primary(T0 + 60 * SEC, instance="db-2")
        armed = evaluate(ABSENT, covered.state, [later], T0 + 60 * SEC, False)

        assert (early.note, early.check_at) == ("expected_arrived", None)
        assert (covered.note, covered.release, covered.check_at) == ("expected_arrived", (), None)
        assert (armed.note, armed.check_at) == ("waiting_for_expected", T0 + 120 * SEC)
        assert "expected_at" not in armed.state, "a covering alert is forgotten after its window"

    def test_once_open_expected_alerts_are_not_passed_through(self) -> None:
        trigger = no_primary(T0)
        events = [
            arrive(trigger),
            arrive(failover(T0 + 2 * MIN)),
            arrive(no_primary(T0 + 3 * MIN, instance="db-2")),
            arrive(resolved(trigger, T0 + 4 * MIN)),
        ]

        trace = simulate(ABSENT, events, until=T0 + 10 * MIN)

        assert [(c.at, c.result.note, {label(s) for s in c.result.release}) for c in trace] == [
            (T0, "waiting_for_expected", set()),
            (T0 + 60 * SEC, "expected_missing", {"db-1"}),
            (T0 + 2 * MIN, "incident_open", set()),
            (T0 + 3 * MIN, "incident_open", {"db-2"}),
            (T0 + 4 * MIN, "incident_open", {"db-1 resolved"}),
        ]

    def test_every_armed_trigger_reaches_the_incident(self) -> None:
        events = [arrive(no_primary(T0)), arrive(no_primary(T0 + 30 * SEC, instance="db-2"))]

        trace = simulate(ABSENT, events, until=T0 + 10 * MIN)

        assert released_ever(trace) == {"db-1", "db-2"}

    def test_expected_earlier_in_the_same_batch_covers_the_trigger(self) -> None:
        trace = simulate(ABSENT, [arrive(failover(T0), no_primary(T0 + SEC))], until=T0 + 10 * MIN)

        assert releases(trace) == []

    def test_expected_after_the_deadline_does_not_stand_down(self) -> None:
        late = T0 + 61 * SEC

        result = evaluate(
            ABSENT, state_after(ABSENT, [no_primary(T0)]), [failover(late)], late, False
        )

        assert {label(s) for s in result.release} == {"db-1"}


# --- heartbeat ----------------------------------------------------------------------------------


class TestHeartbeat:
    """``heartbeat: 5m``: the Watchdog must keep arriving; its absence is the incident."""

    LOST = "heartbeat:monitoring-heartbeat"

    @pytest.mark.parametrize(
        ("signals", "incident_open"),
        [
            pytest.param([], False, id="a check with nothing ever seen"),
            pytest.param([resolved(watchdog(T0), T0)], False, id="only a resolved watchdog"),
            pytest.param([], True, id="even with an incident open"),
        ],
    )
    def test_not_started_before_the_first_heartbeat(
        self, signals: list[Signal], incident_open: bool
    ) -> None:
        result = evaluate(HEARTBEAT, {}, signals, T0 + 60 * MIN, incident_open, None)

        assert (result.note, result.state, result.release, result.check_at) == (
            "not_started",
            {},
            (),
            None,
        )

    def test_first_heartbeat_arms_the_check(self) -> None:
        trace = simulate(HEARTBEAT, [arrive(watchdog(T0))], until=T0 + 4 * MIN)

        assert [(c.result.note, c.result.check_at) for c in trace] == [
            ("heartbeat_seen", T0 + 5 * MIN)
        ]
        assert trace[0].result.state == {"fingerprints": ["watchdog"], "last_seen": T0.isoformat()}

    def test_resends_keep_it_alive_through_last_seen(self) -> None:
        resends = [Resend(T0 + i * MIN, "watchdog") for i in range(1, 9)]
        events: list[Event] = [arrive(watchdog(T0)), *resends]

        trace = simulate(HEARTBEAT, events, until=T0 + 13 * MIN - SEC)

        assert [(c.at, c.via, c.result.check_at) for c in trace] == [
            (T0, "signals", T0 + 5 * MIN),
            (T0 + 5 * MIN, "timer", T0 + 10 * MIN),  # the re-send at T0+5m came just before
            (T0 + 10 * MIN, "timer", T0 + 13 * MIN),
        ]
        assert releases(trace) == []

    def test_lost_after_within_releases_one_synthetic_alert_then_only_rechecks(self) -> None:
        events: list[Event] = [arrive(watchdog(T0)), Resend(T0 + MIN, "watchdog")]

        trace = simulate(HEARTBEAT, events, until=T0 + 60 * MIN)

        assert [(c.at, c.via, c.result.note) for c in trace[:4]] == [
            (T0, "signals", "heartbeat_seen"),
            (T0 + 5 * MIN, "timer", "heartbeat_seen"),
            (T0 + 6 * MIN, "timer", "heartbeat_lost"),
            (T0 + 7 * MIN, "timer", "still_missing"),
        ]
        assert {c.result.note for c in trace[3:]} == {"still_missing"}
        assert [c.at for c in trace[2:]] == [T0 + i * MIN for i in range(6, 61)], "every minute"
        (lost,) = trace[2].result.release
        assert (lost.fingerprint, lost.status, lost.starts_at) == (self.LOST, FIRING, T0 + 6 * MIN)
        assert (lost.name, lost.labels) == (
            "monitoring-heartbeat",
            {"alertname": "monitoring-heartbeat"},
        )
        assert releases(trace) == [(T0 + 6 * MIN, {self.LOST})]

    @pytest.mark.parametrize(
        "now",
        [
            pytest.param(T0 + 5 * MIN, id="checked on time"),
            pytest.param(T0 + 9 * MIN, id="checked late"),
            pytest.param(T0 + 3 * 60 * MIN, id="checked hours late"),
        ],
    )
    def test_lost_occurrence_is_last_arrival_plus_within_whenever_checked(
        self, now: datetime
    ) -> None:
        state = state_after(HEARTBEAT, [watchdog(T0)])

        result = evaluate(HEARTBEAT, state, [], now, False)

        (lost,) = result.release
        assert lost.occurrence == (self.LOST, T0 + 5 * MIN)
        assert (lost.received_at, result.check_at) == (now, now + MIN)

    @pytest.mark.parametrize(
        "incident_open",
        [
            pytest.param(True, id="incident open"),
            pytest.param(False, id="incident resolved by hand"),
        ],
    )
    def test_while_still_missing_nothing_more(self, incident_open: bool) -> None:
        first = evaluate(HEARTBEAT, state_after(HEARTBEAT, [watchdog(T0)]), [], T0 + 5 * MIN, False)
        stored = json.loads(json.dumps(first.state))

        again = evaluate(HEARTBEAT, stored, [], T0 + 20 * MIN, incident_open, last_seen=T0)

        assert (again.note, again.release, again.check_at) == ("still_missing", (), T0 + 21 * MIN)
        assert again.state["lost_since"] == (T0 + 5 * MIN).isoformat()

    @pytest.mark.parametrize(
        ("comeback", "seen_at"),
        [
            pytest.param(
                arrive(watchdog(T0 + 8 * MIN, starts_at=T0 + 8 * MIN)),
                T0 + 8 * MIN,
                id="new watchdog alert: on arrival",
            ),
            pytest.param(
                Resend(T0 + 7 * MIN + 30 * SEC, "watchdog"),
                T0 + 8 * MIN,
                id="unchanged re-sends: at the next recheck",
            ),
        ],
    )
    def test_returning_heartbeat_resolves_the_same_occurrence_and_re_arms(
        self, comeback: Event, seen_at: datetime
    ) -> None:
        trace = simulate(HEARTBEAT, [arrive(watchdog(T0)), comeback], until=T0 + 12 * MIN)

        (lost,) = next(c.result.release for c in trace if c.result.note == "heartbeat_lost")
        back = next(c for c in trace if c.result.release and c.result.note == "heartbeat_seen")
        (found,) = back.result.release
        assert releases(trace) == [
            (T0 + 5 * MIN, {self.LOST}),
            (seen_at, {f"{self.LOST} resolved"}),
        ]
        assert found.occurrence == lost.occurrence == (self.LOST, T0 + 5 * MIN)
        assert (found.status, found.ends_at) == (RESOLVED, seen_at)
        assert back.result.check_at == comeback.at + 5 * MIN
        assert "lost_since" not in back.result.state

    def test_lost_again_after_coming_back_is_a_new_occurrence(self) -> None:
        back = T0 + 8 * MIN
        events = [arrive(watchdog(T0)), arrive(watchdog(back, starts_at=back))]

        trace = simulate(HEARTBEAT, events, until=back + 30 * MIN)

        assert [(c.at, label(s), s.starts_at) for c in trace for s in c.result.release] == [
            (T0 + 5 * MIN, self.LOST, T0 + 5 * MIN),
            (back, f"{self.LOST} resolved", T0 + 5 * MIN),
            (back + 5 * MIN, self.LOST, back + 5 * MIN),
        ]

    def test_back_after_a_hand_resolved_incident_releases_nothing(self) -> None:
        lost = evaluate(HEARTBEAT, state_after(HEARTBEAT, [watchdog(T0)]), [], T0 + 5 * MIN, False)
        heartbeat = watchdog(T0 + 7 * MIN, starts_at=T0 + 7 * MIN)

        result = evaluate(HEARTBEAT, lost.state, [heartbeat], T0 + 7 * MIN, False)

        assert (result.note, result.release) == ("heartbeat_seen", ())
        assert "lost_since" not in result.state

    def test_incident_open_does_not_pass_the_heartbeat_through(self) -> None:
        lost = evaluate(HEARTBEAT, state_after(HEARTBEAT, [watchdog(T0)]), [], T0 + 5 * MIN, False)
        heartbeat = watchdog(T0 + 7 * MIN, starts_at=T0 + 7 * MIN)

        result = evaluate(HEARTBEAT, lost.state, [heartbeat], T0 + 7 * MIN, True)

        assert heartbeat not in result.release
        assert [label(s) for s in result.release] == [f"{self.LOST} resolved"]


# --- all_of -------------------------------------------------------------------------------------


class TestAllOf:
    """``all_of``: a saturated pool and a checkout error spike, firing at the same time."""

    @pytest.mark.parametrize(
        ("events", "expected"),
        [
            pytest.param([arrive(pool(T0))], [], id="pool only: waiting"),
            pytest.param([arrive(spike(T0))], [], id="spike only: waiting"),
            pytest.param(
                [arrive(pool(T0)), arrive(pool(T0 + MIN, instance="pgbouncer-2"))],
                [],
                id="two alerts of one side: waiting",
            ),
            pytest.param(
                [arrive(pool(T0)), arrive(spike(T0 + 10 * MIN))],
                [(T0 + 10 * MIN, {"pgbouncer-1", "checkout-errors"})],
                id="pool then spike: both released",
            ),
            pytest.param(
                [arrive(spike(T0)), arrive(pool(T0 + MIN))],
                [(T0 + MIN, {"pgbouncer-1", "checkout-errors"})],
                id="order does not matter",
            ),
            pytest.param(
                [arrive(pool(T0), spike(T0))],
                [(T0, {"pgbouncer-1", "checkout-errors"})],
                id="both in one batch",
            ),
            pytest.param(
                [
                    arrive(pool(T0)),
                    arrive(pool(T0 + MIN, instance="pgbouncer-2")),
                    arrive(spike(T0 + 2 * MIN)),
                ],
                [(T0 + 2 * MIN, {"pgbouncer-1", "pgbouncer-2", "checkout-errors"})],
                id="every firing alert is released",
            ),
            pytest.param(
                [
                    arrive(pool(T0)),
                    arrive(pool(T0 + MIN, instance="pgbouncer-2")),
                    arrive(resolved(pool(T0), T0 + 2 * MIN)),
                    arrive(spike(T0 + 3 * MIN)),
                ],
                [(T0 + 3 * MIN, {"pgbouncer-2", "checkout-errors"})],
                id="a resolved alert of a side that still fires is not released",
            ),
            pytest.param(
                [
                    arrive(pool(T0)),
                    arrive(resolved(pool(T0), T0 + MIN)),
                    arrive(spike(T0 + 2 * MIN)),
                ],
                [],
                id="one side resolving before the other arrives: waiting again",
            ),
        ],
    )
    def test_opens_when_every_side_fires_at_once(
        self, events: list[Event], expected: list[tuple[datetime, set[str]]]
    ) -> None:
        trace = simulate(ALL_OF, events, until=T0 + 60 * MIN)

        assert releases(trace) == expected
        assert check_ats(trace) == [None] * len(trace), "all_of never needs a timer"

    def test_waiting_keeps_only_firing_alerts(self) -> None:
        state = state_after(
            ALL_OF, [pool(T0)], [resolved(pool(T0), T0 + MIN)], [spike(T0 + 2 * MIN)]
        )

        assert [entry["signal"]["fingerprint"] for entry in state["pending"].values()] == [
            "checkout-errors"
        ]

    def test_state_is_cleared_once_released(self) -> None:
        result = evaluate(
            ALL_OF, state_after(ALL_OF, [pool(T0)]), [spike(T0 + MIN)], T0 + MIN, False
        )

        assert (result.note, result.state) == ("all_conditions_true", {})


# --- an open incident ---------------------------------------------------------------------------


class TestIncidentOpen:
    """Once the group's incident is open, signals go straight to it whatever the condition."""

    @pytest.mark.parametrize(
        ("rule_spec", "pending", "signals"),
        [
            pytest.param(FOR, [slow("a", T0)], [slow("b", T0 + MIN)], id="for: no waiting"),
            pytest.param(
                FOR,
                [slow("a", T0)],
                [resolved(slow("a", T0), T0 + MIN)],
                id="for: resolutions pass too",
            ),
            pytest.param(
                THRESHOLD,
                [probe("fra", T0)],
                [probe("fra", T0 + MIN)],
                id="threshold: no counting",
            ),
            pytest.param(
                ABSENT, [no_primary(T0)], [no_primary(T0 + MIN, "db-2")], id="absent: no waiting"
            ),
            pytest.param(
                ALL_OF, [pool(T0)], [pool(T0 + MIN, "pgbouncer-2")], id="all_of: one side"
            ),
        ],
    )
    def test_signals_pass_straight_through_and_state_is_dropped(
        self, rule_spec: RuleSpec, pending: list[Signal], signals: list[Signal]
    ) -> None:
        state = state_after(rule_spec, pending)
        assert state, "something was pending before the incident opened"

        result = evaluate(rule_spec, state, signals, T0 + MIN, incident_open=True)

        assert result == ConditionResult({}, tuple(signals), None, "incident_open")

    def test_absent_drops_expected_alerts_but_passes_the_rest(self) -> None:
        batch = [
            failover(T0 + MIN),
            no_primary(T0 + MIN, "db-2"),
            resolved(no_primary(T0), T0 + MIN),
        ]

        result = evaluate(ABSENT, {}, batch, T0 + MIN, incident_open=True)

        assert [label(s) for s in result.release] == ["db-2", "db-1 resolved"]

    def test_rule_without_condition_releases_at_once(self) -> None:
        plain = rule("checkout-error-spike")

        result = evaluate(plain, {}, [spike(T0)], T0, incident_open=False)

        assert result == ConditionResult({}, (spike(T0),), None, "matched")


# --- restarts -------------------------------------------------------------------------------------


class TestRestartSafety:
    """State is plain JSON: storing and reloading it between any two calls changes nothing."""

    @pytest.mark.parametrize(
        ("rule_spec", "events", "until"),
        [
            pytest.param(
                FOR,
                [arrive(slow("a", T0)), arrive(slow("b", T0 + 2 * MIN))],
                T0 + 10 * MIN,
                id="for",
            ),
            pytest.param(
                THRESHOLD,
                [arrive(probe("fra", T0)), arrive(probe("iad", T0 + 4 * MIN))],
                T0 + 10 * MIN,
                id="threshold",
            ),
            pytest.param(ABSENT, [arrive(no_primary(T0))], T0 + 10 * MIN, id="absent"),
            pytest.param(
                HEARTBEAT,
                [
                    arrive(watchdog(T0)),
                    Resend(T0 + 3 * MIN, "watchdog"),
                    arrive(watchdog(T0 + 20 * MIN, starts_at=T0 + 20 * MIN)),
                ],
                T0 + 30 * MIN,
                id="heartbeat lost and back",
            ),
            pytest.param(
                ALL_OF, [arrive(pool(T0)), arrive(spike(T0 + 3 * MIN))], T0 + 10 * MIN, id="all_of"
            ),
        ],
    )
    def test_json_round_trip_between_calls_gives_identical_outcomes(
        self, rule_spec: RuleSpec, events: list[Event], until: datetime
    ) -> None:
        in_memory = run(rule_spec, events, until, durable=False)

        restarted = run(rule_spec, events, until, durable=True)

        assert restarted == in_memory
        assert releases(restarted), "the story reaches a release"
        assert all(json.loads(json.dumps(c.result.state)) == c.result.state for c in restarted)
