"""Cutting a cycle's signals into per-group slices: at most a slice per group, oldest first, the
rest carried to its backlog, and a group with a backlog never overtaken by its own new signals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from detector.domain.model import AlertStatus, Signal, Source
from detector.engine.slices import Slicer
from detector.ruleset.rules import RuleSet
from detector.ruleset.schema import RuleSpec
from detector.store.backlog import Lane
from detector.store.signals import PendingSignal

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
POOL = '{cluster="eu-1"}'


def rule(name: str, alertname: str) -> RuleSpec:
    spec: dict[str, Any] = {
        "name": name,
        "match": [f'alertname="{alertname}"'],
        "group_by": ["cluster"],
        "severity": "critical",
        "title": name,
    }
    return RuleSpec.model_validate(spec)


RULES = RuleSet(
    rules={
        "pool": rule("pool", "PgBouncerPoolSaturated"),
        "payments": rule("payments", "PaymentGatewayErrorRateHigh"),
    },
    components={},
    channels={},
    policies={},
)


def pending(signal_id: int, alertname: str = "PgBouncerPoolSaturated") -> PendingSignal:
    labels = {"alertname": alertname, "cluster": "eu-1", "n": str(signal_id)}
    signal = Signal(
        Source.ALERTMANAGER,
        alertname,
        f"f{signal_id}",
        AlertStatus.FIRING,
        T0,
        None,
        labels,
        {},
        T0,
    )
    return PendingSignal(signal_id, signal)


def lane(rule_name: str, ids: list[int], next_id: int | None = None) -> Lane:
    return Lane(rule_name, POOL, [pending(i) for i in ids], next_id)


def cut(
    lanes: list[Lane], new: list[PendingSignal], size: int = 3
) -> dict[str, tuple[list[int], list[int], list[int]]]:
    """Per rule: (ids applied, ids carried, backlog ids done)."""
    slicer = Slicer(RULES, RULES.route, size, lanes)
    slicer.add(new)
    return {
        piece.key[0]: ([p.id for p in piece.apply], piece.carry, [i for _, i in piece.done])
        for piece in slicer.slices()
    }


@pytest.mark.parametrize(
    ("lanes", "new", "expected"),
    [
        pytest.param(
            [],
            [pending(i) for i in (1, 2)],
            {"pool": ([1, 2], [], [])},
            id="within the slice: all applied",
        ),
        pytest.param(
            [],
            [pending(i) for i in (1, 2, 3, 4, 5)],
            {"pool": ([1, 2, 3], [4, 5], [])},
            id="over the slice: the oldest applied, the rest carried",
        ),
        pytest.param(
            [lane("pool", [1, 2])],
            [pending(i) for i in (7, 8)],
            {"pool": ([1, 2, 7], [8], [1, 2])},
            id="the backlog goes first, new signals fill the slice",
        ),
        pytest.param(
            [lane("pool", [1, 2, 3], next_id=4)],
            [pending(i) for i in (9, 10)],
            {"pool": ([1, 2, 3], [9, 10], [1, 2, 3])},
            id="more waits in the backlog: new signals wait behind it",
        ),
        pytest.param(
            [lane("pool", [5, 6, 7], next_id=8)],
            [PendingSignal(2, pending(2).signal, attempts=1, retry_rules=frozenset({"pool"}))],
            {"pool": ([2, 5, 6], [], [5, 6])},
            id="a retry of an older signal goes before the backlog",
        ),
        pytest.param(
            [lane("pool", [1, 2, 3], next_id=4)],
            [pending(9, "PaymentGatewayErrorRateHigh")],
            {"pool": ([1, 2, 3], [], [1, 2, 3]), "payments": ([9], [], [])},
            id="another group goes ahead in the same cycle",
        ),
    ],
)
def test_slices(
    lanes: list[Lane],
    new: list[PendingSignal],
    expected: dict[str, tuple[list[int], list[int], list[int]]],
) -> None:
    assert cut(lanes, new) == expected


@pytest.mark.parametrize(
    ("lanes", "new", "sliced"),
    [
        pytest.param([], [pending(i) for i in (1, 2, 3)], False, id="exactly a slice"),
        pytest.param([], [pending(i) for i in range(1, 5)], True, id="one more"),
        pytest.param([lane("pool", [1], next_id=2)], [], True, id="a backlog with more"),
    ],
)
def test_sliced_tells_when_a_group_has_more_than_a_slice(
    lanes: list[Lane], new: list[PendingSignal], sliced: bool
) -> None:
    slicer = Slicer(RULES, RULES.route, 3, lanes)
    slicer.add(new)

    assert slicer.sliced is sliced


def test_a_backlog_signal_no_rule_routes_there_any_more_just_leaves() -> None:
    slicer = Slicer(RULES, RULES.route, 3, [Lane("gone", POOL, [pending(1)])])

    assert slicer.stale == [(("gone", POOL), 1)]
    assert slicer.slices() == []


def test_outcomes_say_whether_a_rule_matched() -> None:
    slicer = Slicer(RULES, RULES.route, 3, [])

    matched = slicer.add([pending(1), pending(2, "DiskAlmostFull")])

    assert matched == {1: True, 2: False}
