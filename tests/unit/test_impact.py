"""Orders and revenue at risk summed from rate samples, and Prometheus answers read into a
value or the reason there is none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detector.domain.impact import ImpactSample, ImpactStatus, Rates, estimate
from detector.engine.prometheus_api import Reading, reading
from tests.fakes import T0

MINUTE = timedelta(minutes=1)


def test_the_shortfall_is_held_since_the_previous_sample() -> None:
    samples = [
        ImpactSample(T0 + MINUTE, Rates(2.0, 2.0), Rates(100.0, 100.0)),
        ImpactSample(T0 + 2 * MINUTE, Rates(0.5, 2.0), Rates(25.0, 100.0)),
        ImpactSample(T0 + 3 * MINUTE, Rates(3.0, 2.0), Rates(150.0, 100.0)),
    ]
    impact = estimate(T0, samples)
    assert impact.status is ImpactStatus.ESTIMATED
    assert impact.orders_at_risk == pytest.approx(1.5 * 60)
    assert impact.revenue_at_risk == pytest.approx(75.0 * 60)
    assert (impact.order_rate, impact.order_baseline) == (3.0, 2.0)
    assert impact.describe() == "about 90 orders at risk, 4,500.00 revenue at risk"


def test_a_gap_adds_nothing_and_the_latest_reason_shows() -> None:
    samples = [
        ImpactSample(T0 + MINUTE, Rates(0.0, 1.0)),
        ImpactSample(T0 + 2 * MINUTE, None, unknown_reason="orders: Prometheus unreachable"),
    ]
    impact = estimate(T0, samples)
    assert impact.orders_at_risk == pytest.approx(60.0)
    assert impact.revenue_at_risk is None
    assert impact.reason == "orders: Prometheus unreachable"
    assert impact.measured_at == T0 + MINUTE


def test_never_measured_is_unknown_with_the_reason_and_no_figure() -> None:
    samples = [ImpactSample(T0 + MINUTE, None, unknown_reason="orders: query returned nothing")]
    impact = estimate(T0, samples)
    assert impact.status is ImpactStatus.UNKNOWN
    assert impact.orders_at_risk is None
    assert impact.describe() == "impact unknown: orders: query returned nothing"
    assert estimate(T0, []).reason == "not measured yet"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"status": "success", "data": {"resultType": "vector", "result": []}},
            Reading(None, "query returned nothing"),
        ),
        (
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"value": [1, "1.5"]}, {"value": [1, "2"]}],
                },
            },
            Reading(3.5),
        ),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "4"]}},
            Reading(4.0),
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"value": [1, "NaN"]}]},
            },
            Reading(None, "query returned no usable number (NaN)"),
        ),
        (
            {"status": "error", "error": "parse error at char 5"},
            Reading(None, "query failed: parse error at char 5"),
        ),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            Reading(None, "query must return a number or an instant vector"),
        ),
        ("<html>", Reading(None, "Prometheus answered with something other than a query result")),
    ],
)
def test_prometheus_answers(body: object, expected: Reading) -> None:
    assert reading(body) == expected
