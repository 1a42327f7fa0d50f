"""Reconciliation with Alertmanager: resolve alerts whose resolved notification never came.

Alertmanager drops the resolved notification of an alert that resolves while silenced, inhibited
or time-muted (prometheus/alertmanager#226), so an incident fed only by webhooks could stay open
forever. Every ``reconcile_interval`` the reconciler compares the firing alerts attached to open
incidents with ``GET /api/v2/alerts`` and stores a synthetic ``resolved`` signal in the inbox for
each occurrence Alertmanager no longer has. The engine then resolves it through the usual path
(alerts.resolved → all resolved → incident resolved, resolved page): one way to resolve, not two.
The same run adopts stored unmatched alerts that a rule routes now and that Alertmanager still
lists (see :mod:`detector.reconcile.adoption`), so a rule added during an incident sees them
at once.

:func:`plan_reconciliation` is the pure decision; :class:`Reconciler` and the client in
:mod:`detector.reconcile.alertmanager_api` are the I/O around it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from detector.domain.model import AlertStatus, Signal, Source
from detector.reconcile.adoption import adopt_strays
from detector.reconcile.alertmanager_api import AlertSource, FetchError, Snapshot, api_precision
from detector.service.clock import Clock
from detector.service.metrics import Metrics
from detector.store import incidents, locks
from detector.store import signals as inbox
from detector.store.connection import UNAVAILABLE, Pool
from detector.store.incidents import AttachedAlert
from detector.store.timeline import add_timeline

log = structlog.get_logger(__name__)

RECEIVER = "stormwatch-reconciler"
"""The receiver name synthetic resolved signals carry, so they are told apart in the inbox."""
TIMELINE_KIND = "alerts.reconciled"
GONE_REASON = "gone from Alertmanager"
_TIMELINE_SAMPLE = 20


class Outcome(StrEnum):
    """How one reconciliation run ended (the ``outcome`` label of the runs metric)."""

    OK = "ok"
    FETCH_FAILED = "fetch_failed"
    ALERTMANAGER_RESTARTED = "alertmanager_restarted"
    LOCKED = "locked"
    STORE_FAILED = "store_failed"


class GoneReason(StrEnum):
    """Why an occurrence counts as gone from Alertmanager."""

    ABSENT = "absent"
    REFIRED = "refired"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class GoneAlert:
    """An occurrence to resolve, with the reason the planner gave."""

    alert: AttachedAlert
    reason: GoneReason


# --- pure core ----------------------------------------------------------------------------------


def plan_reconciliation(
    attached: Sequence[AttachedAlert],
    listed: Mapping[str, datetime],
    now: datetime,
    grace: timedelta,
) -> list[GoneAlert]:
    """The attached occurrences to resolve, given Alertmanager's ``fingerprint → startsAt`` list.

    Every alert Alertmanager lists counts as present whatever its state (active, suppressed by a
    silence or inhibition, unprocessed): only its absence says it resolved. Occurrences whose
    latest signal is not older than ``grace`` are left alone, so an alert that just fired and is
    racing the API (or an Alertmanager that just restarted) is never resolved by mistake.
    """
    attached_keys = {(a.incident_id, a.fingerprint, api_precision(a.starts_at)) for a in attached}
    gone = []
    for alert in attached:
        if now - alert.last_seen <= grace:
            continue
        reason = _gone_reason(alert, listed.get(alert.fingerprint), attached_keys)
        if reason is not None:
            gone.append(GoneAlert(alert, reason))
    return gone


def _gone_reason(
    alert: AttachedAlert,
    listed_start: datetime | None,
    attached_keys: set[tuple[int, str, datetime]],
) -> GoneReason | None:
    """Alertmanager keeps the earliest startsAt when it merges re-posts of an ongoing alert.

    So a later listed startsAt is a new occurrence (ours ended); an earlier one is the same alert
    merged (e.g. from an HA Prometheus pair), and ours is only gone once the occurrence under
    the merged startsAt is attached to the incident too.
    """
    if listed_start is None:
        return GoneReason.ABSENT
    listed, ours = api_precision(listed_start), api_precision(alert.starts_at)
    if listed > ours:
        return GoneReason.REFIRED
    if listed < ours and (alert.incident_id, alert.fingerprint, listed) in attached_keys:
        return GoneReason.SUPERSEDED
    return None


def alertmanager_settled(started_at: datetime, reported_at: datetime, grace: timedelta) -> bool:
    """Alertmanager keeps alerts in memory only: after a restart its list is empty until
    Prometheus re-sends, so an Alertmanager younger than the grace is not trusted.

    Both times come from Alertmanager's own clock (``uptime`` and the ``Date`` header).
    """
    return reported_at - started_at >= grace


def resolved_signal(alert: AttachedAlert, now: datetime) -> Signal:
    """The synthetic ``resolved`` signal that closes an occurrence through the normal path."""
    return Signal(
        source=Source.ALERTMANAGER,
        name=alert.labels.get("alertname", ""),
        fingerprint=alert.fingerprint,
        status=AlertStatus.RESOLVED,
        starts_at=alert.starts_at,
        ends_at=now,
        labels=alert.labels,
        annotations={},
        received_at=now,
        receiver=RECEIVER,
    )


def timeline_entries(
    gone: Sequence[GoneAlert], now: datetime
) -> dict[int, list[tuple[str, datetime, dict[str, Any]]]]:
    """One ``alerts.reconciled`` entry per affected incident (fingerprints sampled, count exact)."""
    by_incident: dict[int, list[str]] = {}
    for item in gone:
        by_incident.setdefault(item.alert.incident_id, []).append(item.alert.fingerprint)
    return {
        incident_id: [
            (
                TIMELINE_KIND,
                now,
                {
                    "count": len(fingerprints),
                    "fingerprints": sorted(fingerprints)[:_TIMELINE_SAMPLE],
                    "reason": GONE_REASON,
                },
            )
        ]
        for incident_id, fingerprints in by_incident.items()
    }


# --- the periodic task --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one run did, for tests and logs."""

    outcome: Outcome
    gone: tuple[GoneAlert, ...] = ()
    adopted: int = 0


class Reconciler:
    """Runs :func:`plan_reconciliation` against Alertmanager every interval; one replica at a
    time."""

    def __init__(
        self,
        pool: Pool,
        source: AlertSource,
        clock: Clock,
        metrics: Metrics,
        *,
        interval: timedelta,
        grace: timedelta,
        routed: Callable[[Signal], bool],
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._pool = pool
        self._source = source
        self._clock = clock
        self._metrics = metrics
        self._interval = interval.total_seconds()
        self._grace = grace
        self._wake = wake
        self._routed = routed
        self._stopping = False
        self._nudged = asyncio.Event()
        for outcome in Outcome:
            metrics.reconcile_runs.labels(outcome)

    def stop(self) -> None:
        """Stop after the run in progress."""
        self._stopping = True
        self._nudged.set()

    def run_soon(self) -> None:
        """Run now instead of after the pause: after a rules reload, a new rule may adopt
        alerts that are already firing."""
        self._nudged.set()

    async def run(self) -> None:
        """Reconcile every interval until stopped; a failing run never ends the loop."""
        log.info("reconcile.started", interval_s=self._interval)
        while not await self._stopped_within(self._interval):
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("reconcile.failed")
        log.info("reconcile.stopped")

    async def reconcile_once(self) -> ReconcileReport:
        """One run: fetch, plan, store synthetic resolved signals, adopt strays (``routed``
        says whether a rule routes a signal now), wake the engine."""
        now = self._clock.now()
        try:
            snapshot = await self._source.snapshot()
        except FetchError as err:
            log.warning("reconcile.fetch_failed", reason=err.reason, status=err.status)
            return self._finish(ReconcileReport(Outcome.FETCH_FAILED))
        if not alertmanager_settled(snapshot.started_at, snapshot.reported_at or now, self._grace):
            log.info("reconcile.alertmanager_restarted", started_at=snapshot.started_at.isoformat())
            return self._finish(ReconcileReport(Outcome.ALERTMANAGER_RESTARTED))
        try:
            report = await self._apply(snapshot, now)
        except UNAVAILABLE:
            log.exception("reconcile.store_failed")
            return self._finish(ReconcileReport(Outcome.STORE_FAILED))
        if (report.gone or report.adopted) and self._wake is not None:
            self._wake()
        return self._finish(report)

    async def _apply(self, snapshot: Snapshot, now: datetime) -> ReconcileReport:
        """Plan and write in one transaction under the advisory lock."""
        async with self._pool.acquire() as connection, connection.transaction():
            if not await locks.try_hold(connection, locks.AdvisoryLock.RECONCILIATION):
                return ReconcileReport(Outcome.LOCKED)
            gone = plan_reconciliation(
                await incidents.attached_alerts(connection), snapshot.listed, now, self._grace
            )
            if gone:
                signals = [resolved_signal(item.alert, now) for item in gone]
                await inbox.insert_signals(connection, signals)
                for incident_id, entries in timeline_entries(gone, now).items():
                    await add_timeline(connection, incident_id, entries)
            adopted = await adopt_strays(connection, snapshot, self._routed)
        return ReconcileReport(Outcome.OK, tuple(gone), adopted)

    def _finish(self, report: ReconcileReport) -> ReconcileReport:
        self._metrics.reconcile_runs.labels(report.outcome).inc()
        if report.gone:
            self._metrics.reconciled_alerts.inc(len(report.gone))
            log.info(
                "reconcile.resolved",
                alerts=len(report.gone),
                incidents=len({g.alert.incident_id for g in report.gone}),
            )
        if report.adopted:
            self._metrics.reconcile_adopted.inc(report.adopted)
            log.info("reconcile.adopted", alerts=report.adopted)
        return report

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudged.wait(), timeout=seconds)
        self._nudged.clear()
        return self._stopping
