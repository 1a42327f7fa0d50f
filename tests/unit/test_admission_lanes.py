"""Which lane a new connection waits in, and the order lanes hand connections over in."""

from __future__ import annotations

import json

import pytest

from detector.service.admission import Lanes, lane_of


def webhook_head(*names: str) -> bytes:
    body = json.dumps(
        {
            "receiver": "stormwatch",
            "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": n}} for n in names],
        },
        separators=(",", ":"),
    )
    return (
        b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: 127.0.0.1:9095\r\n"
        b"Content-Type: application/json\r\n\r\n" + body.encode()
    )


@pytest.mark.parametrize(
    ("head", "lane"),
    [
        (webhook_head("PgBouncerPoolSaturated"), b"PgBouncerPoolSaturated"),
        (webhook_head("PaymentGatewayErrorRateHigh", "Other"), b"PaymentGatewayErrorRateHigh"),
        (b'{"labels": {"alertname" : "Spaced"}}', b"Spaced"),
        (rb'{"labels":{"alertname":"Quoted \"name\""}}', rb"Quoted \"name\""),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /readyz HTTP/1.1"),
        (
            b"POST /api/v1/alertmanager HTTP/1.1\r\nContent-Le",
            b"POST /api/v1/alertmanager HTTP/1.1",
        ),
        (b"", b""),
    ],
)
def test_a_connection_waits_in_its_first_alerts_lane_else_its_request_lines(
    head: bytes, lane: bytes
) -> None:
    assert lane_of(head) == lane


def test_lanes_take_turns_and_keep_arrival_order_within_each() -> None:
    lanes: Lanes[str] = Lanes()
    for n in range(6):
        lanes.add(b"storm", f"storm-{n}")
    lanes.add(b"payment", "payment-0")
    lanes.add(b"probe", "probe-0")
    assert len(lanes) == 8
    assert lanes.take(4) == ["storm-0", "payment-0", "probe-0", "storm-1"]
    lanes.add(b"payment", "payment-1")  # an emptied lane queues again behind the storm
    assert lanes.take(3) == ["storm-2", "payment-1", "storm-3"]
    assert lanes.take(10) == ["storm-4", "storm-5"]
    assert lanes.take(1) == []
    assert len(lanes) == 0


def test_clearing_hands_back_everything_waiting() -> None:
    lanes: Lanes[int] = Lanes()
    for n in range(5):
        lanes.add(b"a" if n % 2 else b"b", n)
    assert sorted(lanes.clear()) == [0, 1, 2, 3, 4]
    assert lanes.take(5) == []
