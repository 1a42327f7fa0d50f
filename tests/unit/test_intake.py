"""Alertmanager webhook bodies in, Signals out: lenient about versions, strict about identity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.domain.model import AlertStatus, Signal, Source
from detector.intake.alertmanager import (
    PayloadError,
    fingerprint_of,
    log_entry,
    log_record,
    parse_payload,
    signals_from_record,
    to_signals,
)

RECEIVED = datetime(2026, 11, 22, 17, 13, 10, tzinfo=UTC)

# A payload as Prometheus 2.42 -> Alertmanager 0.25 really send it (captured on a test setup).
AM_0_25_BODY = b"""{"receiver":"realprom","status":"firing",
 "alerts":[{"status":"firing",
   "labels":{"alertname":"CheckoutErrorSpike","case":"realprom","cluster":"eu-prod-1","service":"checkout","severity":"page"},
   "annotations":{"runbook_url":"https://runbooks.example.com/checkout/5xx","summary":"Checkout 5xx ratio 7.12% over 5m"},
   "startsAt":"2026-11-22T17:12:58.703Z","endsAt":"0001-01-01T00:00:00Z",
   "generatorURL":"http://prometheus.example.internal:9090/graph?g0.expr=vector%280.0712%29&g0.tab=1",
   "fingerprint":"8589696930689b5d"}],
 "groupLabels":{"alertname":"CheckoutErrorSpike","service":"checkout"},
 "commonLabels":{"alertname":"CheckoutErrorSpike","case":"realprom","cluster":"eu-prod-1","service":"checkout","severity":"page"},
 "commonAnnotations":{"runbook_url":"https://runbooks.example.com/checkout/5xx","summary":"Checkout 5xx ratio 7.12% over 5m"},
 "externalURL":"http://alertmanager.example.internal:9093","version":"4",
 "groupKey":"{}/{case=\\"realprom\\"}:{alertname=\\"CheckoutErrorSpike\\", service=\\"checkout\\"}","truncatedAlerts":0}"""  # noqa: E501


def alert(**overrides: Any) -> dict[str, Any]:
    """One firing alert; ``None`` values remove the field."""
    fields: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "PgBouncerPoolSaturated", "cluster": "eu-prod-1"},
        "annotations": {"summary": "no idle server connection"},
        "startsAt": "2026-11-22T17:12:58.703Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": "8589696930689b5d",
        **overrides,
    }
    return {key: value for key, value in fields.items() if value is not None}


def body(*alerts: dict[str, Any], **overrides: Any) -> bytes:
    """A version 4 webhook body around ``alerts`` (one default alert if none given)."""
    fields: dict[str, Any] = {
        "version": "4",
        "status": "firing",
        "receiver": "stormwatch",
        "groupKey": '{}:{alertname="PgBouncerPoolSaturated"}',
        "alerts": list(alerts) or [alert()],
        **overrides,
    }
    return json.dumps({key: value for key, value in fields.items() if value is not None}).encode()


def signals_of(raw: bytes, received_at: datetime = RECEIVED) -> list[Signal]:
    return to_signals(parse_payload(raw), received_at)


def only_signal(raw: bytes, received_at: datetime = RECEIVED) -> Signal:
    signals = signals_of(raw, received_at)
    assert len(signals) == 1
    return signals[0]


class TestRealPayload:
    def test_alertmanager_0_25_payload_becomes_a_signal(self) -> None:
        signal = only_signal(AM_0_25_BODY)

        assert signal == Signal(
            source=Source.ALERTMANAGER,
            name="CheckoutErrorSpike",
            fingerprint="8589696930689b5d",
            status=AlertStatus.FIRING,
            starts_at=datetime(2026, 11, 22, 17, 12, 58, 703000, tzinfo=UTC),
            ends_at=None,
            labels={
                "alertname": "CheckoutErrorSpike",
                "case": "realprom",
                "cluster": "eu-prod-1",
                "service": "checkout",
                "severity": "page",
            },
            annotations={
                "runbook_url": "https://runbooks.example.com/checkout/5xx",
                "summary": "Checkout 5xx ratio 7.12% over 5m",
            },
            received_at=RECEIVED,
            group_key='{}/{case="realprom"}:{alertname="CheckoutErrorSpike", service="checkout"}',
            receiver="realprom",
        )

    def test_one_signal_per_alert_in_order(self) -> None:
        signals = signals_of(
            body(
                alert(fingerprint="aa01", labels={"alertname": "A", "instance": "pgbouncer-0"}),
                alert(
                    fingerprint="aa02",
                    status="resolved",
                    labels={"alertname": "A", "instance": "pgbouncer-1"},
                    endsAt="2026-11-22T17:13:00Z",
                ),
            )
        )

        assert [(s.fingerprint, s.status) for s in signals] == [
            ("aa01", AlertStatus.FIRING),
            ("aa02", AlertStatus.RESOLVED),
        ]

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(
                body(notification_reason="repeat", routeLabels={"team": "shop"}),
                id="newer top-level fields",
            ),
            pytest.param(
                body(alert(silencedBy=[], inhibitedBy=[], mutedBy=["x"])),
                id="newer alert fields",
            ),
            pytest.param(
                body(groupLabels=None, commonLabels=None, externalURL=None, truncatedAlerts=None),
                id="optional fields missing",
            ),
        ],
    )
    def test_fields_that_vary_by_version_are_tolerated(self, raw: bytes) -> None:
        signal = only_signal(raw)

        assert signal.fingerprint == "8589696930689b5d"
        assert signal.status is AlertStatus.FIRING


class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param(
                "2026-11-22T17:12:58.703Z",
                datetime(2026, 11, 22, 17, 12, 58, 703000, tzinfo=UTC),
                id="milliseconds Z",
            ),
            pytest.param(
                "2026-11-22T17:12:58.703123456Z",
                datetime(2026, 11, 22, 17, 12, 58, 703123, tzinfo=UTC),
                id="nanoseconds Z",
            ),
            pytest.param(
                "2026-11-23T01:12:58.703123456+08:00",
                datetime(2026, 11, 22, 17, 12, 58, 703123, tzinfo=UTC),
                id="nanoseconds with +08:00",
            ),
            pytest.param(
                "2026-11-22T12:12:58-05:00",
                datetime(2026, 11, 22, 17, 12, 58, tzinfo=UTC),
                id="negative offset",
            ),
        ],
    )
    def test_starts_at_is_normalised_to_utc(self, text: str, expected: datetime) -> None:
        signal = only_signal(body(alert(startsAt=text)))

        assert signal.starts_at == expected
        assert signal.starts_at.utcoffset() == timedelta(0)

    @pytest.mark.parametrize(
        ("status", "ends_at", "expected_status", "expected_ends_at"),
        [
            pytest.param("firing", "0001-01-01T00:00:00Z", "firing", None, id="zero endsAt"),
            pytest.param("firing", None, "firing", None, id="endsAt missing"),
            pytest.param(
                "firing",
                "2026-11-22T17:16:58Z",
                "firing",
                datetime(2026, 11, 22, 17, 16, 58, tzinfo=UTC),
                id="firing endsAt in the future",
            ),
            pytest.param(
                "firing",
                "2026-11-23T01:13:05+08:00",
                "resolved",
                datetime(2026, 11, 22, 17, 13, 5, tzinfo=UTC),
                id="firing endsAt already passed counts as resolved",
            ),
            pytest.param(
                "firing",
                "2026-11-22T17:13:10Z",
                "resolved",
                datetime(2026, 11, 22, 17, 13, 10, tzinfo=UTC),
                id="firing endsAt exactly now counts as resolved",
            ),
            pytest.param(
                "resolved",
                "2026-11-22T17:13:33.703Z",
                "resolved",
                datetime(2026, 11, 22, 17, 13, 33, 703000, tzinfo=UTC),
                id="resolved keeps its endsAt",
            ),
        ],
    )
    def test_ends_at_and_status(
        self,
        status: str,
        ends_at: str | None,
        expected_status: str,
        expected_ends_at: datetime | None,
    ) -> None:
        signal = only_signal(body(alert(status=status, endsAt=ends_at)))

        assert signal.status == expected_status
        assert signal.ends_at == expected_ends_at

    def test_timestamp_without_offset_is_rejected_naming_the_field(self) -> None:
        raw = body(alert(startsAt="2026-11-22T17:12:58", endsAt="2026-11-22T17:20:00"))

        with pytest.raises(PayloadError) as raised:
            signals_of(raw)

        assert raised.value.field in {"alerts[0].startsAt", "alerts[0].endsAt"}


class TestFingerprint:
    def test_missing_fingerprint_gets_a_stable_one_from_the_labels(self) -> None:
        labels = {"alertname": "PgBouncerPoolSaturated", "cluster": "eu-prod-1"}
        reordered = {"cluster": "eu-prod-1", "alertname": "PgBouncerPoolSaturated"}

        first = only_signal(body(alert(fingerprint=None, labels=labels)))
        second = only_signal(body(alert(fingerprint="", labels=reordered)))

        assert first.fingerprint == second.fingerprint == fingerprint_of(labels)
        assert len(first.fingerprint) == 16
        assert int(first.fingerprint, 16) >= 0

    @pytest.mark.parametrize(
        ("labels", "other"),
        [
            pytest.param({"a": "1"}, {"a": "2"}, id="different value"),
            pytest.param({"a": "1"}, {"b": "1"}, id="different name"),
            pytest.param({"a": "1", "b": "2"}, {"a": "1b", "": "2"}, id="no ambiguous joining"),
        ],
    )
    def test_different_labels_give_different_fingerprints(
        self, labels: dict[str, str], other: dict[str, str]
    ) -> None:
        assert fingerprint_of(labels) != fingerprint_of(other)

    def test_upper_case_fingerprint_is_lowered(self) -> None:
        signal = only_signal(body(alert(fingerprint="8589696930689B5D")))

        assert signal.fingerprint == "8589696930689b5d"


class TestRejections:
    @pytest.mark.parametrize(
        ("raw", "expected_field", "reason_piece"),
        [
            pytest.param(body(version="3"), "version", "version 4", id="version 3"),
            pytest.param(body(version=None), "version", "required", id="version missing"),
            pytest.param(
                body(alert(status="pending")),
                "alerts[0].status",
                "firing",
                id="alert status invalid",
            ),
            pytest.param(
                body(alert(startsAt=None)), "alerts[0].startsAt", "required", id="startsAt missing"
            ),
            pytest.param(
                body(alert(startsAt="yesterday")),
                "alerts[0].startsAt",
                "datetime",
                id="startsAt not a time",
            ),
            pytest.param(
                body(alert(labels={})), "alerts[0].labels", "at least 1", id="labels empty"
            ),
            pytest.param(
                body(alert(fingerprint="not hex!")),
                "alerts[0].fingerprint",
                "pattern",
                id="fingerprint not hex",
            ),
            pytest.param(
                body(alert(), alert(labels={"a": 1})),
                "alerts[1].labels.a",
                "string",
                id="label value not a string",
            ),
            pytest.param(
                body(alert(startsAt="0001-01-01T00:00:00+01:00")),
                "alerts[0].startsAt",
                "greater than or equal to 0001-01-01T00:00:00Z",
                id="startsAt before year 1 in UTC",
            ),
            pytest.param(
                body(alert(endsAt="9999-12-31T23:59:59-01:00")),
                "alerts[0].endsAt",
                "less than or equal to 9999-12-31T23:59:59.999999Z",
                id="endsAt after year 9999 in UTC",
            ),
            pytest.param(
                body(groupKey='{}:{alertname="a\u0000"}'), "groupKey", "NUL", id="NUL in groupKey"
            ),
            pytest.param(
                body(alert(labels={"alertname": "Pool\u0000"})),
                "alerts[0].labels.alertname",
                "NUL",
                id="NUL in a label value",
            ),
            pytest.param(
                body(alert(annotations={"sum\u0000mary": "x"})),
                "alerts[0].annotations.sum\u0000mary",
                "NUL",
                id="NUL in an annotation name",
            ),
            pytest.param(body(alerts=None), "alerts", "required", id="alerts missing"),
            pytest.param(
                b'{"version": "4", "alerts": [', "body", "not valid JSON", id="invalid JSON"
            ),
            pytest.param(b"", "body", "not valid JSON", id="empty body"),
        ],
    )
    def test_error_names_the_field(
        self, raw: bytes, expected_field: str, reason_piece: str
    ) -> None:
        with pytest.raises(PayloadError) as raised:
            parse_payload(raw)

        error = raised.value
        assert error.field == expected_field
        assert reason_piece in error.errors[0]["reason"]
        assert str(error).startswith(f"{expected_field}: ")

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(body(alert(annotations={"summary": "a \\u0000 b"})), id="escaped text"),
            pytest.param(body(commonLabels={"x": "\u0000"}), id="in a field not kept"),
        ],
    )
    def test_nul_that_is_not_stored_is_accepted(self, raw: bytes) -> None:
        assert len(parse_payload(raw)["alerts"]) == 1

    def test_every_bad_field_is_listed(self) -> None:
        raw = body(alert(status="pending"), alert(startsAt=None), version="3")

        with pytest.raises(PayloadError) as raised:
            parse_payload(raw)

        fields = {error["field"] for error in raised.value.errors}
        assert fields == {"version", "alerts[0].status", "alerts[1].startsAt"}


class TestIntakeLogRecord:
    def test_record_gives_back_every_request_in_order_with_its_arrival_time(self) -> None:
        later = RECEIVED + timedelta(seconds=3)
        first = body(alert(fingerprint="aa"), alert(fingerprint="bb"))
        second = AM_0_25_BODY + b"\n"  # Go's encoder ends the body with a newline
        record = log_record([log_entry(first, RECEIVED), log_entry(second, later)])
        assert signals_from_record(record) == [
            *signals_of(first, RECEIVED),
            *signals_of(second, later),
        ]

    def test_arrival_time_still_decides_whether_a_passed_end_means_resolved(self) -> None:
        ends = "2026-11-22T17:13:05Z"  # after RECEIVED - 1 min, before RECEIVED
        raw = body(alert(endsAt=ends))
        early = RECEIVED - timedelta(minutes=1)
        [before] = signals_from_record(log_record([log_entry(raw, early)]))
        [after] = signals_from_record(log_record([log_entry(raw, RECEIVED)]))
        assert (before.status, after.status) == (AlertStatus.FIRING, AlertStatus.RESOLVED)
