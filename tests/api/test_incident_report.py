"""The post-incident report of a forty-minute checkout outage on a fake clock, checked field by
field: times to detect, acknowledge, tell customers and resolve; the pages and the escalation;
each public update and whether its promise was kept; the related incident; the impact measured
in a stand-in Prometheus, and its chart. Then the statistics behind ``stormwatch stats``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from detector.cli import main
from tests.conftest import RULES, Shop, alert
from tests.fakes import T0, PageReceiver

NOTICE = """    reopen_within: 10m
    impact:
      orders: sum(rate(shop_orders_total[5m]))
      revenue: sum(rate(shop_revenue_cents_total[5m])) / 100
    notice:
      publish: immediately
      impact: Some customers cannot place an order.
      still_works: Your cart is kept and no card is charged for a failed order.
"""
POLICY = "notices:\n  cadence: {critical: 30m}\n  quiet_period: 15m\n"
MINUTE = timedelta(minutes=1)


class StandInPrometheus:
    """Answers instant queries: last week's orders at 2/s and revenue at 100/s, now 0.5 and 25."""

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> StandInPrometheus:
        app = web.Application()
        app.router.add_get("/api/v1/query", self._query)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def _query(self, request: web.Request) -> web.Response:
        at = float(request.query["time"])
        last_week = at < (T0 - timedelta(days=1)).timestamp()
        revenue = "revenue" in request.query["query"]
        value = (100.0 if last_week else 25.0) if revenue else (2.0 if last_week else 0.5)
        data = {"resultType": "vector", "result": [{"metric": {}, "value": [at, str(value)]}]}
        return web.json_response({"status": "success", "data": data})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def prometheus() -> AsyncIterator[StandInPrometheus]:
    server = await StandInPrometheus().start()
    yield server
    await server.stop()


@pytest.fixture
def settings_overrides(prometheus: StandInPrometheus) -> dict[str, Any]:
    return {"prometheus_url": prometheus.url, "status_page_url": "https://status.example"}


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    text = RULES.format(pager_url=pager.url, backup_url=backup.url)
    (directory / "shop.yml").write_text(text.replace("    reopen_within: 10m\n", NOTICE, 1))
    (directory / "notices.yml").write_text(POLICY)
    return directory


def at(delta: timedelta) -> str:
    return (T0 + delta).isoformat(timespec="seconds")


async def outage(shop: Shop) -> None:
    """Fired two minutes before it reached us; paged, escalated after 5m, acknowledged at 7m, an
    update at 20m, a related checkout incident at 1m, resolved by a person at 40m."""
    first = alert(starts_at=T0 - 2 * MINUTE, cluster="eu-prod-1")
    assert (await shop.post_alerts(first)).status == 200
    await shop.cycle()
    await shop.advance(MINUTE)
    assert (await shop.post_alerts(alert("CheckoutErrorSpike", starts_at=T0))).status == 200
    await shop.cycle()
    await shop.advance(4 * MINUTE)  # the escalation to backup
    await shop.advance(2 * MINUTE)
    acked = await shop.client.post("/api/v1/incidents/1/ack", json={"by": "maria"})
    assert acked.status == 200
    await shop.cycle()
    await shop.advance(13 * MINUTE)
    update = {"status": "identified", "message": "A database pool ran dry."}
    assert (await shop.client.post("/api/v1/incidents/1/updates", json=update)).status == 201
    await shop.advance(20 * MINUTE)
    body = {"by": "maria", "reason": "pool resized"}
    assert (await shop.client.post("/api/v1/incidents/1/resolve", json=body)).status == 200
    await shop.cycle()
    await shop.advance(MINUTE)


async def report(shop: Shop, form: str = "markdown") -> str:
    response = await shop.client.get(f"/api/v1/incidents/1/report?format={form}")
    assert response.status == 200, await response.text()
    return await response.text()


def section(text: str, title: str) -> list[str]:
    """The non-empty lines under ``## title``."""
    after = text.split(f"\n## {title}\n", 1)[1]
    return [line for line in after.split("\n## ", 1)[0].splitlines() if line.strip()]


async def test_the_report_states_the_post_mortems_facts(shop: Shop) -> None:
    await outage(shop)
    text = await report(shop)
    assert text.startswith("# Post-incident report: #1 Connection pool exhausted on eu-prod-1\n")
    assert f"| First alert | {at(-2 * MINUTE)} |" in text
    assert f"| Acknowledged | {(T0 + 7 * MINUTE).isoformat()} by maria |" in text
    assert f"| First customer notice | {at(timedelta(0))} |" in text
    assert f"| Resolved | {(T0 + 40 * MINUTE).isoformat()} by maria |" in text
    assert section(text, "Times") == [
        "| Time to | |",
        "|---|---|",
        "| detect | 2m 00s |",
        "| acknowledge | 7m 00s |",
        "| first customer notice | 0s |",
        "| resolve | 40m 00s |",
    ]
    impact = section(text, "Business impact")
    assert impact[0] == "about 3,600 orders at risk, 180,000.00 revenue at risk"
    assert section(text, "Pages and escalations") == [
        f"- {at(timedelta(0))} triggered to pager: delivered (attempt 1)",
        f"- {at(5 * MINUTE)} escalated: step 1 → backup",
        f"- {at(5 * MINUTE)} triggered to backup: delivered (attempt 1)",
        f"- {at(7 * MINUTE)} acknowledged to backup: delivered (attempt 1)",
        f"- {at(7 * MINUTE)} acknowledged to pager: delivered (attempt 1)",
        f"- {at(40 * MINUTE)} resolved to backup: delivered (attempt 1)",
        f"- {at(40 * MINUTE)} resolved to pager: delivered (attempt 1)",
    ]
    notices = section(text, "Customer notices")
    assert notices[0].startswith("Status page: https://status.example/status#")
    assert [line.split("**")[1] for line in notices[1:]] == [
        "investigating",
        "identified",
        "resolved",
    ]
    assert notices[1].endswith(f"(next update promised by {at(30 * MINUTE)}: kept)")
    assert "A database pool ran dry." in notices[2]
    assert notices[2].endswith(f"(next update promised by {at(50 * MINUTE)}: kept)")
    assert notices[3].startswith(f"- {at(40 * MINUTE)} **resolved**: ")
    assert "promised" not in notices[3]
    assert section(text, "Linked incidents") == [
        f"- #2 Checkout errors (resolved, opened {(T0 + MINUTE).isoformat()})"
    ]
    timeline = section(text, "Timeline")
    assert timeline[0].startswith(f"- {T0.isoformat()} `incident.opened`")
    assert any("`impact.estimated`" in line for line in timeline)
    assert any("`impact.final`" in line and '"orders_at_risk": 3600.0' in line for line in timeline)
    for heading in ("Root cause", "What went well", "What went badly", "Action items"):
        assert f"\n## {heading}\n" in text


async def test_the_html_report_draws_the_order_rate_against_its_baseline(shop: Shop) -> None:
    await outage(shop)
    html = await report(shop, "html")
    assert html.startswith("<!doctype html>")
    assert "<script" not in html
    assert html.count("<polyline") == 2
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html
    assert "<td>40m 00s</td>" in html
    assert "<h2>Action items</h2>" in html
    response = await shop.client.get("/api/v1/incidents/1/report?format=html")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


async def test_bad_report_requests_name_the_field(shop: Shop) -> None:
    missing = await shop.client.get("/api/v1/incidents/99/report")
    assert (missing.status, (await missing.json())["field"]) == (404, "id")
    bad = await shop.client.get("/api/v1/incidents/1/report?format=pdf")
    assert (bad.status, (await bad.json())["field"]) == (400, "format")
    since = await shop.client.get("/api/v1/stats?since=soon")
    assert (since.status, (await since.json())["field"]) == (400, "since")


async def test_stats_and_the_cli(shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
    await outage(shop)
    response = await shop.client.get("/api/v1/stats?since=30d")
    rows = (await response.json())["rows"]
    assert rows == [
        {
            "component": "checkout",
            "rule": "checkout-errors",
            "incidents": 1,
            "acknowledged": 0,
            "resolved": 1,  # by itself: 15m without a signal, seen at the 20m cycle
            "notified": 0,
            "mtta_s": None,
            "mttr_s": 1140.0,
            "first_notice_s": None,
        },
        {
            "component": "checkout",
            "rule": "pool-exhausted",
            "incidents": 1,
            "acknowledged": 1,
            "resolved": 1,
            "notified": 1,
            "mtta_s": 420.0,
            "mttr_s": 2400.0,
            "first_notice_s": 0.0,
        },
    ]
    url = str(shop.client.make_url("")).rstrip("/")
    assert await asyncio.to_thread(main, ["stats", "--since", "30d", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "pool-exhausted" in out
    assert "7m 00s" in out
    assert "40m 00s" in out
    assert await asyncio.to_thread(main, ["report", "1", "--url", url]) == 0
    assert "| detect | 2m 00s |" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["incidents", "show", "1", "--url", url]) == 0
    assert "impact: about 3,600 orders at risk" in capsys.readouterr().out
