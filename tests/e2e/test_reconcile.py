"""End to end with a real Alertmanager: a resolution lost to a silence is reconciled.

The story: an alert pages; someone silences it in Alertmanager; it resolves while silenced, so
Alertmanager never sends the resolved notification (prometheus/alertmanager#226). The reconciler
sees the alert gone from ``GET /api/v2/alerts`` and the incident resolves the usual way, with a
resolved page. The service runs on a fake clock with its engine driven by the test; Alertmanager
runs on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from detector.reconcile.reconciler import (
    GONE_REASON,
    RECEIVER,
    GoneReason,
    Outcome,
    Reconciler,
    ReconcileReport,
)
from detector.service.app import RECONCILER, create_app
from detector.service.metrics import Metrics
from detector.web.context import SERVICES
from tests.conftest import LAG_TOO, POOL_NAME, Shop, alert, reload_edited, settings_for
from tests.e2e.alertmanager_process import (
    WEBHOOK_TOKEN,
    free_port,
    pool_alert,
    running_alertmanager,
    wait_ready,
)

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


@pytest.fixture
def alertmanager_port() -> int:
    """Chosen before the service starts, which needs the URL; nothing listens until AM starts."""
    return free_port()


@pytest.fixture
def reconcile_grace() -> str:
    return "2s"


@pytest.fixture
def down_peer() -> bool:
    """Whether the URL list also names an HA peer that is down (nothing listens there)."""
    return False


@pytest.fixture
def settings_overrides(
    alertmanager_port: int, reconcile_grace: str, down_peer: bool
) -> dict[str, Any]:
    peers = [f"http://127.0.0.1:{alertmanager_port}/"]
    if down_peer:
        peers.insert(0, f"http://127.0.0.1:{free_port()}")
    return {
        "alertmanager_url": ", ".join(peers),
        "reconcile_grace": reconcile_grace,
        "webhook_token": WEBHOOK_TOKEN,
    }


@pytest.fixture
async def alertmanager(
    tmp_path: Path, shop: Shop, alertmanager_port: int
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """A real Alertmanager delivering to the shop, ready, with a session to talk to it."""
    webhook_url = str(shop.client.make_url("/api/v1/alertmanager"))
    with running_alertmanager(tmp_path, webhook_url, alertmanager_port) as url:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"{url}/-/ready")
            yield url, session


def reconciler_of(shop: Shop) -> Reconciler:
    return shop.client.server.app[RECONCILER]


def runs(shop: Shop | Metrics, outcome: Outcome) -> float:
    metrics = shop if isinstance(shop, Metrics) else shop.services.metrics
    value = metrics.registry.get_sample_value(
        "stormwatch_reconcile_runs_total", {"outcome": outcome}
    )
    return value or 0.0


def processed(shop: Shop, outcome: str) -> float:
    value = shop.services.metrics.registry.get_sample_value(
        "stormwatch_signals_processed_total", {"outcome": outcome}
    )
    return value or 0.0


def reconciled(shop: Shop) -> float:
    value = shop.services.metrics.registry.get_sample_value("stormwatch_reconciled_alerts_total")
    return value or 0.0


async def cycle_until(shop: Shop, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Engine cycles until ``done`` (bounded): Alertmanager delivers after its group_wait."""
    async with asyncio.timeout(timeout):
        while True:
            await shop.cycle()
            if done():
                return
            await asyncio.sleep(0.1)


async def listed(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """``alertname → status.state`` of what Alertmanager's alert list holds (default filters)."""
    async with session.get(f"{url}/api/v2/alerts") as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    return {a["labels"]["alertname"]: a["status"]["state"] for a in body}


async def silence(session: aiohttp.ClientSession, url: str, alertname: str) -> None:
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": "alertname", "value": alertname, "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "sre@shop.example",
        "comment": "PgBouncer maintenance",
    }
    async with session.post(f"{url}/api/v2/silences", json=body) as response:
        assert response.status == 200, await response.text()


async def reconcile_once_settled(reconciler: Reconciler, timeout: float = 20.0) -> ReconcileReport:
    """Reconcile once Alertmanager has run for the grace: until then its in-memory alert list is
    not trusted (outcome alertmanager_restarted, nothing written), so poll, bounded."""
    async with asyncio.timeout(timeout):
        while True:
            report = await reconciler.reconcile_once()
            if report.outcome is not Outcome.ALERTMANAGER_RESTARTED:
                return report
            await asyncio.sleep(0.2)


async def timeline_kinds(shop: Shop, incident_id: int) -> list[str]:
    return [event["kind"] for event in (await shop.incident(incident_id))["timeline"]]


class TestReconcileWithAlertmanager:
    @pytest.mark.parametrize("down_peer", [False, True], ids=["one peer", "beside a peer down"])
    async def test_resolution_lost_to_a_silence_is_reconciled(
        self, shop: Shop, alertmanager: tuple[str, aiohttp.ClientSession]
    ) -> None:
        url, session = alertmanager
        started = datetime.now(UTC)
        async with session.post(f"{url}/api/v2/alerts", json=pool_alert(started)) as posted:
            assert posted.status == 200, await posted.text()
        await cycle_until(shop, lambda: bool(shop.pager.delivered("triggered")))
        incident_id = shop.pager.delivered("triggered")[0]["incident"]["id"]

        # Silenced is still firing: listed as suppressed, so reconciling changes nothing.
        await silence(session, url, "PgBouncerPoolSaturated")
        assert await listed(session, url) == {"PgBouncerPoolSaturated": "suppressed"}
        shop.clock.advance(timedelta(minutes=10))
        report = await reconcile_once_settled(reconciler_of(shop))
        assert (report.outcome, report.gone) == (Outcome.OK, ())

        # It resolves while silenced: Alertmanager drops it and never tells the service.
        resolve = pool_alert(started, ends_at=datetime.now(UTC))
        async with session.post(f"{url}/api/v2/alerts", json=resolve) as posted:
            assert posted.status == 200
        assert await listed(session, url) == {}
        await shop.cycle()
        assert (await shop.incident(incident_id))["state"] == "triggered"

        shop.clock.advance(timedelta(minutes=1))
        report = await reconciler_of(shop).reconcile_once()
        assert report.outcome is Outcome.OK
        assert [g.reason for g in report.gone] == [GoneReason.ABSENT]
        await shop.cycle()

        detail = await shop.incident(incident_id)
        assert detail["state"] == "resolved"
        assert [a["status"] for a in detail["alerts"]] == ["resolved"]
        [entry] = [e for e in detail["timeline"] if e["kind"] == "alerts.reconciled"]
        assert entry["detail"] == {
            "count": 1,
            "fingerprints": [report.gone[0].alert.fingerprint],
            "reason": GONE_REASON,
        }
        kinds = [e["kind"] for e in detail["timeline"]]
        assert kinds.index("alerts.reconciled") < kinds.index("incident.resolved")
        assert [p["event"] for p in shop.pager.delivered()] == ["triggered", "resolved"]
        assert (runs(shop, Outcome.OK), reconciled(shop)) == (2, 1)

        again = await reconciler_of(shop).reconcile_once()
        assert (again.outcome, again.gone) == (Outcome.OK, ())
        assert (await timeline_kinds(shop, incident_id)).count("alerts.reconciled") == 1

    @pytest.mark.parametrize("silenced", [False, True], ids=["firing", "silenced"])
    async def test_a_rule_added_for_a_firing_alert_adopts_it(
        self,
        shop: Shop,
        rules_dir: Path,
        alertmanager: tuple[str, aiohttp.ClientSession],
        silenced: bool,
    ) -> None:
        url, session = alertmanager
        lag = [
            {
                "labels": {"alertname": "ReplicationLagHigh", "cluster": "eu-prod-1"},
                "startsAt": datetime.now(UTC).isoformat(),
            }
        ]
        async with session.post(f"{url}/api/v2/alerts", json=lag) as posted:
            assert posted.status == 200, await posted.text()
        await cycle_until(shop, lambda: processed(shop, "unmatched") == 1)
        if silenced:
            await silence(session, url, "ReplicationLagHigh")
        await reload_edited(shop, rules_dir, POOL_NAME, LAG_TOO)

        report = await reconcile_once_settled(reconciler_of(shop))
        await shop.cycle()

        assert (report.outcome, report.adopted) == (Outcome.OK, 0 if silenced else 1)
        if silenced:
            assert await shop.incidents() == []
            return
        [incident] = await shop.incidents("open")
        assert incident["rule"] == "pool-exhausted"
        assert len(shop.pager.delivered("triggered")) == 1
        again = await reconciler_of(shop).reconcile_once()
        assert (again.outcome, again.adopted) == (Outcome.OK, 0)

    @pytest.mark.parametrize("reconcile_grace", ["1h"])
    async def test_freshly_restarted_alertmanager_resolves_nothing(
        self, shop: Shop, alertmanager: tuple[str, aiohttp.ClientSession]
    ) -> None:
        # Alertmanager keeps alerts in memory: just after a restart its list is empty until
        # Prometheus re-sends. This alert reached the service but not this (new) Alertmanager.
        posted = await shop.post_alerts(alert(cluster="eu-prod-1"), headers=AUTH)
        assert posted.status == 200
        await shop.cycle()
        [incident] = await shop.incidents("open")
        shop.clock.advance(timedelta(hours=2))

        report = await reconciler_of(shop).reconcile_once()

        assert (report.outcome, report.gone) == (Outcome.ALERTMANAGER_RESTARTED, ())
        await shop.cycle()
        assert (await shop.incident(incident["id"]))["state"] == "triggered"
        assert "alerts.reconciled" not in await timeline_kinds(shop, incident["id"])


class TestReconcileFailures:
    @pytest.mark.parametrize("down_peer", [False, True], ids=["one peer", "every peer"])
    async def test_unreachable_alertmanager_resolves_nothing(self, shop: Shop) -> None:
        # Nothing listens on alertmanager_port (no Alertmanager fixture here), nor on the
        # other peer's port when there is one.
        posted = await shop.post_alerts(alert(cluster="eu-prod-1"), headers=AUTH)
        assert posted.status == 200
        await shop.cycle()
        [incident] = await shop.incidents("open")
        shop.clock.advance(timedelta(hours=1))

        report = await reconciler_of(shop).reconcile_once()

        assert (report.outcome, report.gone) == (Outcome.FETCH_FAILED, ())
        assert (runs(shop, Outcome.FETCH_FAILED), runs(shop, Outcome.OK)) == (1, 0)
        assert reconciled(shop) == 0
        await shop.cycle()
        assert (await shop.incident(incident["id"]))["state"] == "triggered"
        assert "alerts.reconciled" not in await timeline_kinds(shop, incident["id"])
        synthetic = await shop.services.pool.fetchval(
            "SELECT count(*) FROM signals WHERE receiver = $1", RECEIVER
        )
        assert synthetic == 0
        assert [p["event"] for p in shop.pager.delivered()] == ["triggered"]

    async def test_loop_survives_failures_and_stops_with_the_service(
        self, database_url: str, rules_dir: Path, alertmanager_port: int
    ) -> None:
        async with serving(database_url, rules_dir, alertmanager_port, "50ms") as (_, metrics):
            async with asyncio.timeout(10):
                while runs(metrics, Outcome.FETCH_FAILED) < 3:  # noqa: ASYNC110 - a metric
                    await asyncio.sleep(0.05)
        assert runs(metrics, Outcome.OK) == 0

    async def test_a_rules_reload_runs_it_at_once(
        self, database_url: str, rules_dir: Path, alertmanager_port: int
    ) -> None:
        async with serving(database_url, rules_dir, alertmanager_port, "1h") as (app, metrics):
            assert runs(metrics, Outcome.FETCH_FAILED) == 0, "the first run waits an hour"
            assert app[SERVICES].reloader.reload("api").ok
            async with asyncio.timeout(10):
                while runs(metrics, Outcome.FETCH_FAILED) < 1:  # noqa: ASYNC110 - a metric
                    await asyncio.sleep(0.02)


@asynccontextmanager
async def serving(
    database_url: str, rules_dir: Path, alertmanager_port: int, interval: str
) -> AsyncIterator[tuple[web.Application, Metrics]]:
    """The whole app with its engine and reconciler loops running, reconciling every
    ``interval`` with an Alertmanager URL nothing listens on."""
    settings = settings_for(
        database_url,
        rules_dir,
        run_engine=True,
        alertmanager_url=f"http://127.0.0.1:{alertmanager_port}",
        reconcile_interval=interval,
    )
    metrics = Metrics()
    app = create_app(settings, metrics=metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        yield app, metrics
    finally:
        async with asyncio.timeout(10):
            await runner.cleanup()
