"""Reconciliation, the pure part: which held alerts are gone from Alertmanager, what is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from detector.domain.model import AlertStatus, Signal, Source
from detector.reconcile.adoption import to_adopt
from detector.reconcile.alertmanager_api import Snapshot, merge, parse_alerts
from detector.reconcile.reconciler import (
    GONE_REASON,
    RECEIVER,
    GoneAlert,
    GoneReason,
    alertmanager_settled,
    plan_reconciliation,
    resolved_signal,
    timeline_entries,
)
from detector.store.incidents import AttachedAlert
from detector.store.signals import PendingSignal

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
GRACE = 5 * MIN
NOW = T0 + timedelta(hours=1)
FP = "2d1daebe3b0a5bcd"
OLD = NOW - GRACE - SEC  # last signal comfortably older than the grace


def held(
    starts_at: datetime = T0, last_seen: datetime = OLD, fingerprint: str = FP, incident: int = 1
) -> AttachedAlert:
    return AttachedAlert(
        incident, fingerprint, starts_at, last_seen, {"alertname": "PoolSaturated"}
    )


# The body Alertmanager 0.25 returned in the lab: one active, one silenced, one inhibited alert.
AM_025_BODY = json.dumps(
    [
        {
            "annotations": {},
            "endsAt": "2026-11-27T09:10:21.869Z",
            "fingerprint": fingerprint,
            "receivers": [{"name": "stormwatch"}],
            "startsAt": "2026-11-27T09:00:00.000Z",
            "status": {"inhibitedBy": inhibited, "silencedBy": silenced, "state": state},
            "updatedAt": "2026-11-27T09:05:21.869Z",
            "labels": {"alertname": name},
        }
        for fingerprint, name, state, silenced, inhibited in [
            ("00000000000000a1", "Active", "active", [], []),
            ("00000000000000b2", "Silenced", "suppressed", ["d4e56995"], []),
            ("00000000000000c3", "Inhibited", "suppressed", [], ["00000000000000a1"]),
        ]
    ]
).encode()


class TestPlan:
    @pytest.mark.parametrize(
        ("alerts", "listed", "expected"),
        [
            pytest.param([held()], {}, [GoneReason.ABSENT], id="gone from Alertmanager"),
            pytest.param([held()], {FP: T0}, [], id="present"),
            pytest.param(
                [held()],
                {FP: T0 + 10 * MIN},
                [GoneReason.REFIRED],
                id="present with a new startsAt",
            ),
            pytest.param(
                [held(starts_at=T0 + 30 * SEC)],
                {FP: T0},
                [],
                id="earlier startsAt is the same alert merged (HA Prometheus)",
            ),
            pytest.param(
                [held(starts_at=T0), held(starts_at=T0 + 30 * SEC)],
                {FP: T0},
                [None, GoneReason.SUPERSEDED],
                id="merged duplicate we also hold under the earlier startsAt",
            ),
            pytest.param(
                [held(starts_at=T0 + timedelta(microseconds=123_987))],
                {FP: T0 + timedelta(milliseconds=123)},
                [],
                id="API truncates startsAt to milliseconds",
            ),
            pytest.param(
                [held(last_seen=NOW - GRACE + SEC)], {}, [], id="within grace: just fired, racing"
            ),
            pytest.param([held(last_seen=NOW - GRACE)], {}, [], id="exactly at grace is kept"),
            pytest.param(
                [held(fingerprint="00000000000000b2"), held(fingerprint="00000000000000c3")],
                parse_alerts(AM_025_BODY)[0],
                [],
                id="silenced and inhibited still present",
            ),
            pytest.param(
                [held(fingerprint="00000000000000a1"), held(fingerprint="00000000000000ff")],
                parse_alerts(AM_025_BODY)[0],
                [None, GoneReason.ABSENT],
                id="only the absent one of several",
            ),
        ],
    )
    def test_decides(
        self,
        alerts: list[AttachedAlert],
        listed: Mapping[str, datetime],
        expected: list[GoneReason | None],
    ) -> None:
        gone = plan_reconciliation(alerts, listed, NOW, GRACE)
        wanted = [
            GoneAlert(alert, reason)
            for alert, reason in zip(alerts, expected, strict=False)
            if reason is not None
        ]
        assert gone == wanted

    def test_nothing_held_nothing_gone(self) -> None:
        assert plan_reconciliation([], {}, NOW, GRACE) == []


class TestParseAlerts:
    def test_reads_fingerprint_and_starts_at_of_every_state(self) -> None:
        assert parse_alerts(AM_025_BODY) == (
            {"00000000000000a1": T0, "00000000000000b2": T0, "00000000000000c3": T0},
            frozenset({"00000000000000b2", "00000000000000c3"}),  # silenced, inhibited
        )

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"{}", id="object instead of array"),
            pytest.param(b'[{"startsAt": "2026-11-27T09:00:00Z"}]', id="no fingerprint"),
            pytest.param(b'[{"fingerprint": "ab"}]', id="no startsAt"),
            pytest.param(b"<html>", id="not json"),
        ],
    )
    def test_rejects_bad_bodies(self, body: bytes) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
            parse_alerts(body)


class TestAlertmanagerSettled:
    @pytest.mark.parametrize(
        ("running_for", "settled"),
        [
            pytest.param(SEC, False, id="just restarted: list still empty"),
            pytest.param(GRACE, True, id="running for the grace"),
            pytest.param(timedelta(days=3), True, id="long running"),
        ],
    )
    def test_trusts_alertmanager_after_grace(self, running_for: timedelta, settled: bool) -> None:
        assert alertmanager_settled(NOW - running_for, NOW, GRACE) is settled


class TestWrites:
    def test_resolved_signal_closes_the_same_occurrence(self) -> None:
        signal = resolved_signal(held(), NOW)
        assert signal.source is Source.ALERTMANAGER
        assert signal.status is AlertStatus.RESOLVED
        assert signal.occurrence == (FP, T0)
        assert (signal.ends_at, signal.received_at) == (NOW, NOW)
        assert signal.receiver == RECEIVER
        assert signal.name == "PoolSaturated"
        assert signal.labels == {"alertname": "PoolSaturated"}

    def test_one_timeline_entry_per_incident(self) -> None:
        gone = [
            GoneAlert(held(fingerprint="b", incident=1), GoneReason.ABSENT),
            GoneAlert(held(fingerprint="a", incident=1), GoneReason.REFIRED),
            GoneAlert(held(fingerprint="c", incident=2), GoneReason.ABSENT),
        ]
        assert timeline_entries(gone, NOW) == {
            1: [
                (
                    "alerts.reconciled",
                    NOW,
                    {"count": 2, "fingerprints": ["a", "b"], "reason": GONE_REASON},
                )
            ],
            2: [
                (
                    "alerts.reconciled",
                    NOW,
                    {"count": 1, "fingerprints": ["c"], "reason": GONE_REASON},
                )
            ],
        }


class TestMergePeers:
    """An HA cluster's peers each hold what Prometheus sent them; any of them listing an alert
    keeps it present."""

    OLD_PEER = Snapshot({"a": T0, "b": T0}, T0 - timedelta(days=3), T0, frozenset({"a"}))
    NEW_PEER = Snapshot({"b": T0 - MIN, "c": T0}, T0 - MIN, T0 + SEC, frozenset({"c"}))

    @pytest.mark.parametrize(
        ("peers", "listed", "started_at"),
        [
            pytest.param([OLD_PEER], {"a": T0, "b": T0}, T0 - timedelta(days=3), id="one peer"),
            pytest.param(
                [NEW_PEER, OLD_PEER],
                {"a": T0, "b": T0 - MIN, "c": T0},
                T0 - timedelta(days=3),
                id="union, earliest startsAt, the longest-running peer's uptime",
            ),
        ],
    )
    def test_merge(
        self, peers: list[Snapshot], listed: dict[str, datetime], started_at: datetime
    ) -> None:
        merged = merge(peers)
        assert (dict(merged.listed), merged.started_at) == (listed, started_at)
        assert merged.reported_at == T0, "the uptime is read off the same peer's clock"
        assert merged.muted == frozenset().union(*(peer.muted for peer in peers))


class TestToAdopt:
    """Which stored unmatched alerts go to the engine: still listed as the same occurrence, and
    routed by a rule now."""

    @staticmethod
    def stray(signal_id: int, name: str, starts_at: datetime = T0) -> PendingSignal:
        labels = {"alertname": name}
        return PendingSignal(
            signal_id,
            Signal(
                Source.ALERTMANAGER,
                name,
                f"fp{signal_id}",
                AlertStatus.FIRING,
                starts_at,
                None,
                labels,
                {},
                starts_at,
            ),
        )

    @pytest.mark.parametrize(
        ("listed", "expected"),
        [
            pytest.param({"fp1": T0, "fp2": T0}, [1], id="routed and listed: adopted"),
            pytest.param({}, [], id="no longer listed: it may have resolved unseen"),
            pytest.param({"fp1": T0 + MIN}, [], id="listed as a later occurrence"),
            pytest.param(
                {"fp1": T0 + timedelta(microseconds=400)}, [1], id="the API's milliseconds"
            ),
        ],
    )
    def test_adopts(self, listed: dict[str, datetime], expected: list[int]) -> None:
        strays = [
            self.stray(1, "ReplicationLagHigh", T0 + timedelta(microseconds=123)),
            self.stray(2, "Watchdog"),
        ]

        def routed(signal: Signal) -> bool:
            return signal.name == "ReplicationLagHigh"

        assert to_adopt(strays, listed, routed) == expected
