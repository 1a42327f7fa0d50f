"""Which intake log records a quick pass may take ahead of a paced storm: only those whose alert
names reach no rule of the storm's backlog, nor any rule of a record left behind before them, so
no group ever sees its signals out of arrival order."""

from __future__ import annotations

from typing import Any

import pytest

from detector.engine.overtaking import PutOff, may_overtake, overtaking, waiting
from detector.engine.slices import GroupSlice
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.ruleset.schema import RuleSpec
from detector.store.intake_log import Head, names_payload, payload_names
from tests.unit.test_slices import pending

REACH = {
    "PgBouncerPoolSaturated": ["db-pool", "checkout-failing-db-pool"],
    "CheckoutErrorSpike": ["checkout-errors", "checkout-failing-db-pool"],
    "PaymentGatewayErrorRateHigh": ["payments"],
    "PaymentAuthorizationRateDrop": ["payments-drop"],
}
STORM = frozenset({"checkout-failing-db-pool"})


def reach(name: str) -> list[str]:
    return REACH.get(name, [])


def head(record: int, *names: str, alerts: int = 1) -> Head:
    return Head(record, alerts, names)


class TestOvertaking:
    @pytest.mark.parametrize(
        ("heads", "taken"),
        [
            pytest.param(
                [head(1, "PgBouncerPoolSaturated"), head(2, "PaymentGatewayErrorRateHigh")],
                [2],
                id="an unrelated alert goes ahead of the storm's",
            ),
            pytest.param(
                [head(1, "CheckoutErrorSpike"), head(2, "PgBouncerPoolSaturated")],
                [],
                id="an alert the storm's rule also sees waits its turn",
            ),
            pytest.param(
                [
                    head(1, "PgBouncerPoolSaturated"),
                    head(2, "PaymentGatewayErrorRateHigh", "CheckoutErrorSpike"),
                    head(3, "PaymentGatewayErrorRateHigh"),
                ],
                [],
                id="a record behind one left waiting on a shared rule waits too",
            ),
            pytest.param(
                [head(1, "NoRuleSeesThis"), head(2, "PaymentAuthorizationRateDrop")],
                [1, 2],
                id="alerts no rule sees go ahead, to be stored as unmatched",
            ),
            pytest.param(
                [
                    head(1, "PaymentGatewayErrorRateHigh"),
                    Head(2, 1, None),
                    head(3, "PaymentAuthorizationRateDrop"),
                ],
                [1],
                id="a record of unknown names holds back all behind it",
            ),
        ],
    )
    def test_taken(self, heads: list[Head], taken: list[int]) -> None:
        assert overtaking(heads, STORM, reach, max_alerts=500) == taken

    def test_takes_about_max_alerts(self) -> None:
        heads = [head(n, "PaymentGatewayErrorRateHigh", alerts=200) for n in range(1, 6)]
        assert overtaking(heads, STORM, reach, max_alerts=500) == [1, 2, 3]

    def test_a_storm_over_lets_records_through_in_order(self) -> None:
        heads = [head(1, "PgBouncerPoolSaturated"), head(2, "CheckoutErrorSpike")]
        assert overtaking(heads, frozenset(), reach, max_alerts=500) == [1, 2]


class TestMayOvertake:
    @pytest.mark.parametrize(
        ("names", "expected"),
        [
            pytest.param(("PaymentGatewayErrorRateHigh",), True, id="another rule's alert"),
            pytest.param(("PgBouncerPoolSaturated",), False, id="more of the storm"),
            pytest.param(
                ("PaymentGatewayErrorRateHigh", "CheckoutErrorSpike"),
                False,
                id="one name the storm's rule sees",
            ),
            pytest.param(None, True, id="names not known: a quick pass looks"),
        ],
    )
    def test_worth_a_quick_pass(self, names: tuple[str, ...] | None, expected: bool) -> None:
        assert may_overtake(names, STORM, reach) is expected


class TestPayload:
    @pytest.mark.parametrize(
        "names", [("PgBouncerPoolSaturated",), ("a,b", 'c"d', "é"), (), None], ids=repr
    )
    def test_names_survive_the_notification(self, names: tuple[str, ...] | None) -> None:
        assert payload_names(names_payload(names)) == names

    def test_names_too_long_for_a_notification_go_as_unknown(self) -> None:
        assert payload_names(names_payload(tuple(f"Alert{n:05d}" for n in range(1000)))) is None

    @pytest.mark.parametrize("payload", ["", "not json", '{"a": 1}', "[1, 2]"])
    def test_anything_else_is_unknown(self, payload: str) -> None:
        assert payload_names(payload) is None


def spec(name: str, *alertnames: str, **extra: Any) -> RuleSpec:
    matching: dict[str, Any] = (
        {"all_of": [[f'alertname="{alertname}"'] for alertname in alertnames]}
        if len(alertnames) > 1
        else {"match": [f'alertname="{alertnames[0]}"']}
    )
    return RuleSpec.model_validate(
        {"name": name, "group_by": ["cluster"], "severity": "critical", "title": name}
        | matching
        | extra
    )


RULES = RuleSet(
    rules={
        rule.name: rule
        for rule in (
            spec(
                "checkout-failing-db-pool",
                "PgBouncerPoolSaturated",
                "CheckoutErrorSpike",
                supersedes={"rules": ["db-pool", "checkout-errors", "payments-drop"]},
            ),
            spec("db-pool", "PgBouncerPoolSaturated"),
            spec("checkout-errors", "CheckoutErrorSpike"),
            spec("payments", "PaymentGatewayErrorRateHigh"),
            spec("payments-drop", "PaymentAuthorizationRateDrop"),
        )
    },
    components={},
    channels={},
    policies={},
)


def piece(rule: str, alertname: str, *ids: int, carry: tuple[int, ...] = ()) -> GroupSlice:
    """A group's slice of a cycle: ``ids`` to apply, ``carry`` to its backlog."""
    signals = [pending(i, alertname) for i in ids]
    return GroupSlice(
        RuleMatch(RULES.rules[rule], "eu-1", {"cluster": "eu-1"}), signals, list(carry)
    )


POOL = "PgBouncerPoolSaturated"


class TestPutOff:
    """Once a quick pass waits, the rest of a storm's cycle puts off the groups the storm
    reaches, and whatever they supersede, and applies every other group as it would."""

    @pytest.mark.parametrize(
        ("storming", "pieces", "put_off"),
        [
            pytest.param(
                {"checkout-failing-db-pool"},
                [
                    piece("checkout-failing-db-pool", POOL, 1, 2),
                    piece("db-pool", POOL, 1),
                    piece("payments", "PaymentGatewayErrorRateHigh", 3),
                    piece("db-pool", POOL, 2),
                ],
                [True, True, False, True],
                id="the storm's groups wait and another rule's applies",
            ),
            pytest.param(
                frozenset(),
                [piece("db-pool", POOL, 1), piece("payments", "PaymentGatewayErrorRateHigh", 2)],
                [False, False],
                id="nothing storms: nothing waits",
            ),
            pytest.param(
                {"checkout-failing-db-pool"},
                [
                    piece("checkout-failing-db-pool", POOL, 1),
                    piece("payments-drop", "PaymentAuthorizationRateDrop", 2),
                ],
                [True, True],
                id="a rule a put-off rule supersedes waits, though the storm never reaches it",
            ),
            pytest.param(
                {"db-pool"},
                [
                    piece("checkout-failing-db-pool", POOL, 1),
                    piece("checkout-errors", "CheckoutErrorSpike", 2),
                    piece("payments", "PaymentGatewayErrorRateHigh", 3),
                ],
                [True, True, False],
                id="a group whose alerts reach the storming rule waits, and what it supersedes",
            ),
            pytest.param(
                {"checkout-failing-db-pool"},
                [piece("checkout-failing-db-pool", POOL, carry=(1, 2))],
                [False],
                id="a group with nothing to apply carries as it would",
            ),
        ],
    )
    def test_which_groups_wait(
        self, storming: set[str], pieces: list[GroupSlice], put_off: list[bool]
    ) -> None:
        deciding = PutOff(RULES, frozenset(storming))
        assert [deciding.wants(p) for p in pieces] == put_off

    def test_a_put_off_group_keeps_its_backlog_and_carries_the_rest_in_order(self) -> None:
        slice_ = piece("db-pool", POOL, 3, 5, 7, carry=(9,))
        slice_.done = [(("db-pool", "eu-1"), 3)]
        key = ("db-pool", "eu-1")
        assert waiting(slice_) == [(key, 5), (key, 7), (key, 9)], "3 stays where it was"
