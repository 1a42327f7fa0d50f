"""Rule conditions under alert storms: thousands of alerts in one group decide exactly what a
handful would, each batch reads only the members it can touch, and a group's waiting state stays
within its bound.

The stories reuse the engine loop of ``test_conditions`` (state through JSON between calls).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson
import pytest

from detector.domain.model import Signal
from detector.ruleset.conditions import State, decide, evaluate, needed, released
from detector.ruleset.schema import RuleSpec
from detector.ruleset.waiting import Dropped, Member, load_signal, occurrence_key
from tests.unit.test_conditions import (
    ABSENT,
    ALL_OF,
    FOR,
    MIN,
    SEC,
    T0,
    THRESHOLD,
    Arrive,
    alert,
    arrive,
    failover,
    label,
    releases,
    resolved,
    simulate,
    spike,
)

DATABASES = [f"orders-{n:02d}" for n in range(20)]
BATCH = 250
MS = timedelta(milliseconds=1)


def pools(count: int, start: datetime, spacing: timedelta = MS * 10) -> list[Signal]:
    """``count`` saturated PgBouncer pools over 20 databases of the eu-1 cluster, arriving
    ``spacing`` apart from ``start``."""
    return [
        alert(
            "PgBouncerPoolSaturated",
            f"pool-{n}",
            start + n * spacing,
            start + n * spacing,
            database=DATABASES[n % len(DATABASES)],
            instance=f"pgbouncer-{n}",
        )
        for n in range(count)
    ]


def slows(count: int, start: datetime, spacing: timedelta) -> list[Signal]:
    return [
        alert("CheckoutLatencyP99High", f"slow-{n}", start + n * spacing, start + n * spacing)
        for n in range(count)
    ]


def no_primaries(count: int, start: datetime, spacing: timedelta) -> list[Signal]:
    return [
        alert("PostgresNoPrimary", f"db-{n}", start + n * spacing, start + n * spacing)
        for n in range(count)
    ]


def probes(count: int, start: datetime, spacing: timedelta, location: str) -> list[Signal]:
    return [
        alert(
            "SyntheticCheckoutFailed",
            f"probe-{location}-{n}",
            start + n * spacing,
            start + n * spacing,
            location=location,
        )
        for n in range(count)
    ]


def in_batches(signals: Sequence[Signal], size: int = BATCH) -> list[Arrive]:
    return [arrive(*signals[i : i + size]) for i in range(0, len(signals), size)]


def names(signals: Sequence[Signal]) -> list[str]:
    return [label(s) for s in signals]


def state_after(rule: RuleSpec, events: Sequence[Arrive]) -> State:
    """The stored state after the batches (no timers: each batch is evaluated on arrival)."""
    state: State = {}
    for event in events:
        result = evaluate(rule, state, event.signals, event.at, False)
        state = orjson.loads(orjson.dumps(result.state))  # as the store's codec does
    return state


def stored_members(state: State) -> list[Member]:
    """The members of a whole state, as the store keeps them (one row each)."""
    members: list[Member] = []
    for key, entry in state.get("pending", {}).items():
        signal = load_signal(entry["signal"])
        members.append(Member(key, datetime.fromisoformat(entry["since"]), signal))
    for event in state.get("events", []):
        signal = load_signal(event["signal"])
        at = datetime.fromisoformat(event["at"])
        members.append(Member(occurrence_key(signal), at, signal, event["value"]))
    return members


class TestSameDecisionsAtScale:
    """Thousands of alerts in one group decide what a few would."""

    def test_all_of_releases_every_waiting_pool_in_arrival_order_when_checkout_fails(
        self,
    ) -> None:
        storm = pools(3000, T0)
        errors = spike(T0 + 40 * MIN)

        trace = simulate(ALL_OF, [*in_batches(storm), arrive(errors)], until=T0 + 60 * MIN)

        ((at, _),) = releases(trace)
        assert at == T0 + 40 * MIN
        assert names(trace[-1].result.release) == [*names(storm), "checkout-errors"]
        assert {c.result.note for c in trace[:-1]} == {"waiting_for_others"}
        assert trace[-1].result.state == {}

    def test_all_of_leaves_out_the_pools_that_recovered_meanwhile(self) -> None:
        storm = pools(2000, T0)
        recovered = [resolved(s, T0 + 30 * MIN) for s in storm[::2]]
        events = [*in_batches(storm), *in_batches(recovered), arrive(spike(T0 + 31 * MIN))]

        trace = simulate(ALL_OF, events, until=T0 + 40 * MIN)

        assert names(trace[-1].result.release) == [*names(storm[1::2]), "checkout-errors"]

    def test_all_of_storm_in_one_batch_with_the_spike_in_the_middle(self) -> None:
        storm = pools(3000, T0)
        errors = spike(storm[1500].received_at + MS)

        result = evaluate(ALL_OF, {}, [*storm, errors], storm[-1].received_at, False)

        assert names(result.release) == names([*storm[:1501], errors, *storm[1501:]])
        assert result.note == "all_conditions_true"

    def test_for_opens_when_the_earliest_still_firing_has_held_for_the_duration(self) -> None:
        storm = slows(2000, T0, 100 * MS)  # over 200 s
        recovered = [resolved(s, T0 + 4 * MIN) for s in storm[:500]]

        trace = simulate(FOR, [*in_batches(storm), *in_batches(recovered)], until=T0 + 10 * MIN)

        assert releases(trace) == [(storm[500].received_at + 5 * MIN, set(names(storm[500:])))]
        assert trace[-1].via == "timer"

    def test_threshold_window_keeps_only_recent_arrivals_of_a_storm(self) -> None:
        storm = probes(2000, T0, 300 * MS, "fra")  # over 10 minutes, one location
        state = state_after(THRESHOLD, in_batches(storm))
        cutoff = storm[-1].received_at - 5 * MIN

        assert [e["at"] for e in state["events"]] == [
            s.received_at.isoformat() for s in storm if s.received_at > cutoff
        ]
        assert state["tally"]["values"] == {"fra": len(state["events"])}

    def test_threshold_second_location_releases_the_storm_still_in_the_window(self) -> None:
        storm = probes(2000, T0, 300 * MS, "fra")
        other = probes(1, storm[-1].received_at + SEC, SEC, "iad")
        within = [s for s in storm if s.received_at > other[0].received_at - 5 * MIN]

        trace = simulate(THRESHOLD, [*in_batches(storm), arrive(*other)], until=T0 + 20 * MIN)

        assert names(trace[-1].result.release) == names([*within, *other])

    def test_absent_releases_every_trigger_when_no_failover_follows(self) -> None:
        storm = no_primaries(1500, T0, 20 * MS)

        trace = simulate(ABSENT, in_batches(storm), until=T0 + 10 * MIN)

        assert releases(trace) == [(T0 + 60 * SEC, set(names(storm)))]

    def test_absent_failover_stands_down_a_storm_of_triggers(self) -> None:
        storm = no_primaries(1500, T0, 20 * MS)

        events = [*in_batches(storm), arrive(failover(T0 + 50 * SEC))]

        trace = simulate(ABSENT, events, until=T0 + 5 * MIN)

        assert releases(trace) == []
        assert "pending" not in trace[-1].result.state


class TestCostPerBatch:
    """A batch reads only the members it can touch: its own alerts and a few more."""

    @pytest.mark.parametrize(
        ("rule", "storm", "batch", "at"),
        [
            pytest.param(
                ALL_OF,
                pools(5000, T0),
                [*pools(5010, T0)[5000:], resolved(pools(1, T0)[0], T0 + 20 * MIN)],
                T0 + 20 * MIN,
                id="all_of: the batch's own occurrences",
            ),
            pytest.param(
                FOR,
                slows(5000, T0, 50 * MS),
                [resolved(s, T0 + 4 * MIN) for s in slows(10, T0, 50 * MS)],
                T0 + 4 * MIN,
                id="for: its occurrences and the earliest left after them",
            ),
            pytest.param(
                THRESHOLD,
                probes(5000, T0, 50 * MS, "fra"),
                probes(10, T0 + 250 * SEC, SEC, "fra"),
                T0 + 250 * SEC + 10 * SEC,
                id="threshold: its occurrences and the arrivals leaving the window",
            ),
        ],
    )
    def test_members_read_grow_with_the_batch_not_the_group(
        self, rule: RuleSpec, storm: list[Signal], batch: list[Signal], at: datetime
    ) -> None:
        state = state_after(rule, in_batches(storm, 1000))
        members = stored_members(state)
        summary = {k: v for k, v in state.items() if k not in ("pending", "events")}

        need = needed(rule, summary, batch, at, incident_open=False)
        read = need.select(members)
        partial = decide(rule, summary, read, batch, at, False)

        assert len(members) >= 4000
        assert len(read) <= 2 * len(batch) + 1
        assert partial == decide(rule, summary, members, batch, at, False), "same as reading all"


class TestBound:
    """A group keeps at most ``limit`` waiting alerts; the earliest leave first, counted."""

    def test_over_the_limit_the_earliest_pools_leave_and_are_counted(self) -> None:
        storm = pools(150, T0)
        state: State = {}
        dropped = 0
        for event in in_batches(storm, 40):
            summary = {k: v for k, v in state.items() if k != "pending"}
            members = stored_members(state)
            need = needed(ALL_OF, summary, event.signals, event.at, False, limit=100)
            outcome = decide(
                ALL_OF, summary, need.select(members), event.signals, event.at, False, limit=100
            )
            dropped += outcome.change.dropped.get(Dropped.OVER_LIMIT, 0)
            state = json.loads(
                json.dumps(evaluate(ALL_OF, state, event.signals, event.at, False, limit=100).state)
            )

        result = evaluate(ALL_OF, state, [spike(T0 + MIN)], T0 + MIN, False, limit=100)

        assert dropped == 50
        assert names(result.release) == [*names(storm[51:]), "checkout-errors"], "one more left"

    def test_released_members_come_from_the_store_in_arrival_order(self) -> None:
        storm = pools(500, T0)
        state = state_after(ALL_OF, in_batches(storm, 100))
        summary = {k: v for k, v in state.items() if k != "pending"}
        batch = [resolved(storm[3], T0 + MIN), spike(T0 + MIN)]
        members = stored_members(state)

        need = needed(ALL_OF, summary, batch, T0 + MIN, False)
        outcome = decide(ALL_OF, summary, need.select(members), batch, T0 + MIN, False)

        assert outcome.release_waiting
        assert outcome.change.cleared
        assert names(released(outcome, members)) == [
            *names(storm[:3]),
            *names(storm[4:]),
            "checkout-errors",
        ]
