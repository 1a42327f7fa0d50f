"""Grouping: which of a group's incidents its next signals meet, and what they change there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from detector.domain.grouping import current_incident, decide_group
from detector.domain.model import AlertStatus, Incident, IncidentState, Severity, Signal, Source
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.ruleset.schema import RuleSpec

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
TRIGGERED, ACKNOWLEDGED, RESOLVED = (
    IncidentState.TRIGGERED,
    IncidentState.ACKNOWLEDGED,
    IncidentState.RESOLVED,
)
GROUP_KEY = '{cluster="eu-1"}'


def incident(id_: int, state: IncidentState, resolved_at: datetime | None = None) -> Incident:
    """An incident of the pool-exhausted rule's eu-1 group, opened at T0."""
    return Incident(
        rule="pool-exhausted",
        group_key=GROUP_KEY,
        group_labels={"cluster": "eu-1"},
        state=state,
        severity=Severity.CRITICAL,
        title="Connection pool exhausted on eu-1",
        summary="",
        component=None,
        policy=None,
        opened_at=T0,
        last_signal_at=T0,
        id=id_,
        resolved_at=resolved_at,
    )


CURRENT_INCIDENT_CASES = [
    pytest.param([], None, id="a group without incidents has none"),
    pytest.param([incident(1, RESOLVED, T0)], 1, id="only a resolved one: that one"),
    pytest.param(
        [incident(1, TRIGGERED), incident(2, RESOLVED, T0 + MIN)],
        1,
        id="the open one, though a later one resolved since",
    ),
    pytest.param(
        [incident(3, ACKNOWLEDGED), incident(2, RESOLVED, T0)],
        3,
        id="acknowledged is still open",
    ),
    pytest.param(
        [incident(1, RESOLVED, T0 + 2 * MIN), incident(2, RESOLVED, T0 + MIN)],
        1,
        id="of resolved ones the latest resolution, not the highest id",
    ),
    pytest.param(
        [incident(1, RESOLVED, T0), incident(2, RESOLVED, T0), incident(3, RESOLVED, T0 - MIN)],
        2,
        id="resolved at the same time: the higher id",
    ),
    pytest.param(
        [incident(1, RESOLVED), incident(2, RESOLVED, T0 + MIN)],
        1,
        id="resolved without a time counts as the most recent",
    ),
    pytest.param(
        [incident(1, RESOLVED), incident(2, RESOLVED)],
        2,
        id="two without a time: the higher id",
    ),
]


class TestCurrentIncident:
    """The open incident, else the most recently resolved (``store.lock_group`` in SQL)."""

    @pytest.mark.parametrize(("candidates", "expected"), CURRENT_INCIDENT_CASES)
    def test_picks(self, candidates: list[Incident], expected: int | None) -> None:
        for order in permutations(candidates):
            picked = current_incident(order)

            assert (picked.id if picked else None) == expected, "in any order"


def rule(**fields: object) -> RuleSpec:
    spec = {
        "name": "pool-exhausted",
        "match": ['alertname="PgBouncerPoolSaturated"'],
        "group_by": ["cluster"],
        "severity": "critical",
        "title": "Connection pool exhausted on {{ labels.cluster }}",
        **fields,
    }
    return RuleSpec.model_validate(spec)


def pool_alert(at: datetime) -> Signal:
    return Signal(
        source=Source.ALERTMANAGER,
        name="PgBouncerPoolSaturated",
        fingerprint="pgbouncer-1",
        status=AlertStatus.FIRING,
        starts_at=at,
        ends_at=None,
        labels={"alertname": "PgBouncerPoolSaturated", "cluster": "eu-1"},
        annotations={},
        received_at=at,
    )


def group_of(spec: RuleSpec) -> tuple[RuleSet, RuleMatch]:
    rules = RuleSet(rules={spec.name: spec}, components={}, channels={}, policies={})
    return rules, RuleMatch(spec, GROUP_KEY, {"cluster": "eu-1"})


class TestDecideGroup:
    """The rule's condition first, when it has one; what it releases goes to the incident."""

    def test_without_a_condition_signals_go_straight_to_the_incident(self) -> None:
        rules, match = group_of(rule())

        change = decide_group(rules, match, None, {}, [pool_alert(T0)], T0, None)

        assert change.condition is None
        assert change.decision is not None
        assert change.decision.reason == "opened"

    def test_a_condition_holding_the_signals_back_decides_nothing(self) -> None:
        rules, match = group_of(rule(**{"for": "5m"}))

        change = decide_group(rules, match, None, {}, [pool_alert(T0)], T0, None)

        assert change.condition is not None
        assert (change.condition.note, change.condition.check_at) == ("waiting", T0 + 5 * MIN)
        assert change.decision is None

    def test_what_the_condition_releases_opens_the_incident(self) -> None:
        rules, match = group_of(rule(**{"for": "5m"}))
        waiting = decide_group(rules, match, None, {}, [pool_alert(T0)], T0, None).condition
        assert waiting is not None

        change = decide_group(rules, match, None, waiting.state, [], T0 + 5 * MIN, None)

        assert change.condition is not None
        assert change.condition.note == "lasted_long_enough"
        assert change.decision is not None
        assert change.decision.reason == "opened"

    def test_the_condition_is_told_whether_the_incident_is_open(self) -> None:
        rules, match = group_of(rule(**{"for": "5m"}))
        open_one = incident(1, TRIGGERED)

        change = decide_group(rules, match, open_one, {}, [pool_alert(T0)], T0, None)

        assert change.condition is not None
        assert change.condition.note == "incident_open"
        assert change.decision is not None
        assert change.decision.reason == "attached"
