"""Rule conditions through the real service and database, driven by a fake clock.

Condition state and check timers live in PostgreSQL, so a restart in the middle of a window
(a new app on the same database) changes nothing about when the incident opens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from detector.service.app import create_app
from detector.web.context import SERVICES
from tests.conftest import Shop, alert, settings_for
from tests.fakes import T0, PageReceiver

CONDITION_RULES = """
channels:
  - name: pager
    type: webhook
    url: {pager_url}
escalation_policies:
  - name: oncall
    steps:
      - notify: [pager]
rules:
  - name: slow-checkout
    match: ['alertname="CheckoutLatencyP99High"']
    for: 5m
    severity: major
    title: Checkout is slow
    escalation_policy: oncall
  - name: probe-failing
    match: ['alertname="SyntheticCheckoutFailed"']
    threshold: {{count: 2, within: 5m, distinct: location}}
    severity: critical
    title: Synthetic checkout failing from several locations
    escalation_policy: oncall
  - name: failover-failed
    match: ['alertname="PostgresNoPrimary"']
    group_by: [cluster]
    absent:
      expect: ['alertname="PostgresFailoverHappened"']
      within: 60s
    severity: critical
    title: "Database failover did not complete on {{{{ labels.cluster }}}}"
    escalation_policy: oncall
  - name: monitoring-heartbeat
    match: ['alertname="Watchdog"']
    heartbeat: {{within: 5m}}
    severity: critical
    title: Alerting pipeline is down (no Watchdog heartbeat)
    escalation_policy: oncall
  - name: checkout-down-db-pool
    group_by: [cluster]
    all_of:
      - ['alertname="PgBouncerPoolSaturated"']
      - ['alertname="CheckoutErrorSpike"']
    severity: critical
    title: "Checkout failing: database pool exhausted on {{{{ labels.cluster }}}}"
    escalation_policy: oncall
"""


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "conditions.yml").write_text(CONDITION_RULES.format(pager_url=pager.url))
    return directory


async def titles(shop: Shop, state: str = "all") -> list[str]:
    return sorted(incident["title"] for incident in await shop.incidents(state))


@pytest.fixture
async def restart(database_url: str, rules_dir: Path) -> AsyncIterator[object]:
    """Replace the shop's app by a fresh one on the same database (a process restart)."""
    clients: list[TestClient] = []

    async def run(shop: Shop) -> None:
        await shop.client.close()
        app = create_app(settings_for(database_url, rules_dir), clock=shop.clock)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        shop.client, shop.services = client, app[SERVICES]

    yield run
    for client in clients:
        await client.close()


class TestFor:
    async def test_opens_after_holding_for_the_duration_across_a_restart(
        self, shop: Shop, restart
    ) -> None:  # type: ignore[no-untyped-def]
        await shop.post_alerts(alert("CheckoutLatencyP99High", service="checkout"))
        await shop.cycle()
        await shop.advance(timedelta(minutes=4))
        assert await titles(shop) == []
        await restart(shop)
        await shop.advance(timedelta(minutes=1))
        assert await titles(shop) == ["Checkout is slow"]
        assert len(shop.pager.delivered("triggered")) == 1

    async def test_alert_resolving_before_the_duration_opens_nothing(self, shop: Shop) -> None:
        slow = alert("CheckoutLatencyP99High", service="checkout")
        await shop.post_alerts(slow)
        await shop.advance(timedelta(minutes=3))
        await shop.post_alerts({**slow, "status": "resolved"})
        await shop.advance(timedelta(minutes=10))
        assert await titles(shop) == []


class TestThreshold:
    async def test_needs_two_distinct_locations_within_the_window(self, shop: Shop) -> None:
        await shop.post_alerts(alert("SyntheticCheckoutFailed", location="fra"))
        await shop.advance(timedelta(minutes=1))
        await shop.post_alerts(
            alert("SyntheticCheckoutFailed", location="fra", starts_at=T0 + timedelta(minutes=1))
        )
        await shop.advance(timedelta(minutes=1))
        assert await titles(shop) == [], "one location twice is not two locations"
        await shop.post_alerts(alert("SyntheticCheckoutFailed", location="iad"))
        await shop.cycle()
        assert await titles(shop) == ["Synthetic checkout failing from several locations"]

    async def test_old_events_leave_the_window(self, shop: Shop) -> None:
        await shop.post_alerts(alert("SyntheticCheckoutFailed", location="fra"))
        await shop.advance(timedelta(minutes=6))
        await shop.post_alerts(alert("SyntheticCheckoutFailed", location="iad"))
        await shop.cycle()
        assert await titles(shop) == []


class TestAbsent:
    async def test_failover_in_time_opens_nothing(self, shop: Shop) -> None:
        await shop.post_alerts(alert("PostgresNoPrimary", cluster="eu-1"))
        await shop.advance(timedelta(seconds=30))
        await shop.post_alerts(alert("PostgresFailoverHappened", cluster="eu-1"))
        await shop.advance(timedelta(minutes=5))
        assert await titles(shop) == []

    async def test_missing_failover_opens_across_a_restart(self, shop: Shop, restart) -> None:  # type: ignore[no-untyped-def]
        await shop.post_alerts(alert("PostgresNoPrimary", cluster="eu-1"))
        await shop.advance(timedelta(seconds=30))
        await restart(shop)
        await shop.post_alerts(alert("PostgresFailoverHappened", cluster="us-1"))
        await shop.advance(timedelta(seconds=29))
        assert await titles(shop) == []
        await shop.advance(timedelta(seconds=1))
        assert await titles(shop) == ["Database failover did not complete on eu-1"]
        assert len(shop.pager.delivered("triggered")) == 1


class TestHeartbeat:
    async def test_lost_heartbeat_opens_and_returning_heartbeat_resolves(self, shop: Shop) -> None:
        watchdog = alert("Watchdog", severity="none")
        await shop.post_alerts(watchdog)
        await shop.cycle()
        for _ in range(3):  # Alertmanager repeats the same Watchdog every minute
            await shop.advance(timedelta(minutes=1))
            await shop.post_alerts(watchdog)
        await shop.advance(timedelta(minutes=4, seconds=59))
        assert await titles(shop) == []
        await shop.advance(timedelta(seconds=1))
        assert await titles(shop, "open") == ["Alerting pipeline is down (no Watchdog heartbeat)"]
        await shop.advance(timedelta(minutes=2))
        await shop.post_alerts({**watchdog, "startsAt": shop.clock.now().isoformat()})
        await shop.cycle()
        assert await titles(shop, "open") == []
        assert len(shop.pager.delivered("resolved")) == 1


class TestAllOf:
    async def test_opens_only_when_every_condition_holds(self, shop: Shop) -> None:
        await shop.post_alerts(alert("PgBouncerPoolSaturated", cluster="eu-1"))
        await shop.post_alerts(alert("CheckoutErrorSpike", cluster="us-1"))
        await shop.cycle()
        assert await titles(shop) == []
        await shop.post_alerts(alert("CheckoutErrorSpike", cluster="eu-1"))
        await shop.cycle()
        assert await titles(shop) == ["Checkout failing: database pool exhausted on eu-1"]


class TestDroppedIsCounted:
    async def test_an_arrival_leaving_the_window_is_counted_by_rule_and_reason(
        self, shop: Shop
    ) -> None:
        await shop.post_alerts(alert("SyntheticCheckoutFailed", location="fra"))
        await shop.cycle()
        await shop.advance(timedelta(minutes=6))
        await shop.post_alerts(alert("SyntheticCheckoutFailed", location="iad"))
        await shop.cycle()

        text = await (await shop.client.get("/metrics")).text()
        dropped = {
            (sample.labels["rule"], sample.labels["reason"]): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "stormwatch_condition_dropped_total"
        }
        assert dropped == {("probe-failing", "left_window"): 1.0}
