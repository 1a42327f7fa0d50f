"""Business impact measured in a real Prometheus (Debian's ``prometheus``) scraping the demo
shop under background traffic: payments break, orders stop, and the incident counts the orders
and revenue at risk against the hour before it opened; an unreachable Prometheus and a query
that returns nothing leave the impact unknown, with the reason, never an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from detector.demo_shop.faults import Fault, FaultRequest
from detector.demo_shop.shop import Shop as DemoShop
from detector.demo_shop.storefront import create_storefront
from detector.demo_shop.traffic import traffic_context
from tests.conftest import RULES, Shop, alert
from tests.e2e.alertmanager_process import free_port, wait_ready
from tests.e2e.prometheus_process import running_prometheus
from tests.fakes import PageReceiver

ORDERS = "sum(rate(shop_orders_total[10s]))"
REVENUE = "sum(rate(shop_revenue_cents_total[10s])) / 100"
IMPACT_RULES = """\
rules:
  - name: checkout-down
    match: ['alertname="CheckoutDown"']
    severity: critical
    title: Checkout down
    auto_resolve: false
    impact:
      orders: "{orders}"
      revenue: "{revenue}"
      baseline: hour
"""


@pytest.fixture
async def demo_shop() -> AsyncIterator[tuple[DemoShop, str]]:
    shop = DemoShop()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_storefront(shop)
    app.cleanup_ctx.append(traffic_context(url, 20.0))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield shop, url
    finally:
        await runner.cleanup()


@pytest.fixture
def prometheus(tmp_path: Path, demo_shop: tuple[DemoShop, str]) -> Iterator[str]:
    with running_prometheus(tmp_path, demo_shop[1]) as url:
        yield url


@pytest.fixture
def orders_query() -> str:
    return ORDERS


@pytest.fixture
def settings_overrides(prometheus: str) -> dict[str, Any]:
    return {"prometheus_url": prometheus, "impact_interval": "5s"}


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver, orders_query: str) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "shop.yml").write_text(RULES.format(pager_url=pager.url, backup_url=backup.url))
    impact = IMPACT_RULES.format(orders=orders_query, revenue=REVENUE)
    (directory / "impact.yml").write_text(impact)
    return directory


async def sales_recorded(prometheus: str) -> None:
    """Wait (bounded) until Prometheus has a non-zero order rate."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        await wait_ready(session, f"{prometheus}/-/ready")
        while True:
            params = {"query": ORDERS}
            async with session.get(f"{prometheus}/api/v1/query", params=params) as response:
                result = (await response.json())["data"]["result"]
            if result and float(result[0]["value"][1]) > 0:
                return
            await asyncio.sleep(0.5)


async def at_real_time(shop: Shop) -> None:
    """Move the fake clock to now, so queries ask Prometheus about what it has scraped."""
    shop.clock.advance(datetime.now(UTC) - shop.clock.now())
    await shop.cycle()


async def open_incident(shop: Shop) -> int:
    await at_real_time(shop)
    response = await shop.post_alerts(alert("CheckoutDown", starts_at=shop.clock.now()))
    assert response.status == 200
    await shop.cycle()
    [incident] = await shop.incidents()
    return int(incident["id"])


async def test_orders_at_risk_while_payments_are_down(
    shop: Shop, demo_shop: tuple[DemoShop, str], prometheus: str
) -> None:
    await sales_recorded(prometheus)
    await asyncio.sleep(6)  # the hour-before baseline samples the rate every 5 s
    incident_id = await open_incident(shop)
    opened = await shop.incident(incident_id)
    assert opened["impact"]["status"] == "estimated", opened["impact"]["reason"]
    demo_shop[0].set_fault(FaultRequest(name=Fault.PAYMENT_DOWN))
    await asyncio.sleep(12)  # past the 10 s rate window: no order is paid any more
    await at_real_time(shop)
    impact = (await shop.incident(incident_id))["impact"]
    assert impact["status"] == "estimated", impact
    assert impact["order_rate"] < impact["order_baseline"] / 2
    assert impact["order_baseline"] > 1
    assert impact["orders_at_risk"] > 5
    assert impact["revenue_at_risk"] > 0
    assert impact["reason"] is None
    resolved = await shop.client.post(f"/api/v1/incidents/{incident_id}/resolve")
    assert resolved.status == 200
    await at_real_time(shop)
    await shop.advance(timedelta(seconds=5))  # the refresh after the resolution is the last
    detail = await shop.incident(incident_id)
    kinds = [event["kind"] for event in detail["timeline"]]
    assert kinds.count("impact.estimated") == 1
    [final] = [event for event in detail["timeline"] if event["kind"] == "impact.final"]
    assert final["detail"]["orders_at_risk"] == pytest.approx(
        detail["impact"]["orders_at_risk"], abs=0.01
    )
    await shop.advance(timedelta(minutes=5))
    assert [e["kind"] for e in (await shop.incident(incident_id))["timeline"]] == kinds


@pytest.mark.parametrize("orders_query", ["sum(rate(shop_no_such_series_total[10s]))"])
async def test_a_query_that_returns_nothing_leaves_the_impact_unknown(
    shop: Shop, prometheus: str
) -> None:
    await sales_recorded(prometheus)
    incident_id = await open_incident(shop)
    detail = await shop.incident(incident_id)
    assert detail["impact"]["status"] == "unknown"
    assert detail["impact"]["reason"] == "orders: query returned nothing"
    assert detail["impact"]["orders_at_risk"] is None
    assert detail["impact"]["summary"] == "impact unknown: orders: query returned nothing"
    [event] = [e for e in detail["timeline"] if e["kind"].startswith("impact.")]
    assert event == {**event, "kind": "impact.unknown"}


class TestUnreachable:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"prometheus_url": f"http://127.0.0.1:{free_port()}", "impact_interval": "5s"}

    @pytest.fixture
    def rules_dir(self, tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
        directory = tmp_path / "rules"
        directory.mkdir()
        text = RULES.format(pager_url=pager.url, backup_url=backup.url)
        (directory / "shop.yml").write_text(text)
        (directory / "impact.yml").write_text(IMPACT_RULES.format(orders=ORDERS, revenue=REVENUE))
        return directory

    async def test_an_unreachable_prometheus_leaves_the_impact_unknown(self, shop: Shop) -> None:
        incident_id = await open_incident(shop)
        impact = (await shop.incident(incident_id))["impact"]
        assert impact["status"] == "unknown"
        assert impact["reason"] == "orders: Prometheus unreachable"
        report = await shop.advance(timedelta(seconds=5))
        assert report.busy
        impact = (await shop.incident(incident_id))["impact"]
        assert impact["status"] == "unknown"
