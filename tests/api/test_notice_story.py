"""Customers hear it from us first: a two-hour outage on a fake clock, from the alert to the
post-incident notice, with every promised update on time (by a person or as a holding update),
and the same story when a replica dies holding the notice timers."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.cli import main
from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer
from detector.engine.notice_stage import LEASE
from detector.store import public_incidents, timers
from detector.web.ack_links import LinkBuilder
from detector.web.status_state import page_info
from responders.statuspage.model import IncidentStatus, PublicIncident
from tests.conftest import RULES, Shop, alert
from tests.fakes import T0, PageReceiver

NOTICE = """    reopen_within: 10m
    notice:
      publish: immediately
      impact: Some customers cannot place an order.
      still_works: Your cart is kept and no card is charged for a failed order.
"""
POLICY = """notices:
  jargon: [PgBouncer, 5xx]
  cadence: {critical: 30m}
  remind_before: 5m
  quiet_period: 15m
"""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"status_page_time_zone": "Europe/Berlin"}


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    text = RULES.format(pager_url=pager.url, backup_url=backup.url)
    (directory / "shop.yml").write_text(text.replace("    reopen_within: 10m\n", NOTICE, 1))
    (directory / "notices.yml").write_text(POLICY)
    return directory


async def statuspage(shop: Shop) -> dict[str, Any]:
    """``summary.json`` as customers fetch it, after the snapshot caught up."""
    await shop.services.status_page.rebuild()
    response = await shop.client.get("/api/v2/summary.json")
    assert response.status == 200
    summary: dict[str, Any] = await response.json()
    return summary


async def customers_see(shop: Shop, status: str | None, component: str) -> dict[str, Any]:
    """Check the public summary: the incident's status and the newest update's text matching
    the store's, the component's status; returns the incident (None when none is open)."""
    summary = await statuspage(shop)
    (checkout,) = [c for c in summary["components"] if c["name"] == "Checkout"]
    assert checkout["status"] == component
    if status is None:
        assert summary["incidents"] == []
        return {}
    (incident,) = summary["incidents"]
    assert incident["status"] == status
    newest = (await public(shop)).updates[0]
    assert incident["incident_updates"][0]["body"] == newest.body
    assert incident["incident_updates"][0]["status"] == newest.status
    return dict(incident)


def second_engine(shop: Shop) -> Shop:
    """The shop with another engine replica on the same database, rules, clock and page."""
    services, settings = shop.services, shop.services.settings
    links = LinkBuilder(settings.base_url, services.signing_key, timedelta(hours=1), shop.clock)
    page = page_info("Our shop", settings.status_page_base, settings.status_page_time_zone)
    engine = Engine(
        services.pool,
        lambda: services.rules.routes,
        Deliverer(links, random.Random(7)),
        shop.clock,
        services.metrics,
        page=page,
    )
    return replace(shop, engine=engine)


async def public(shop: Shop, incident_id: int = 1) -> PublicIncident:
    async with shop.services.pool.acquire() as connection:
        found = await public_incidents.of_incident(connection, incident_id)
    assert found is not None
    return found


def late(shop: Shop) -> float:
    value = shop.services.metrics.registry.get_sample_value(
        "stormwatch_notice_updates_total", {"punctuality": "late"}
    )
    return value or 0.0


async def at(shop: Shop, hh_mm: str) -> None:
    """Move the clock to ``hh_mm`` UTC on the story's day and run one cycle."""
    hours, minutes = (int(part) for part in hh_mm.split(":"))
    target = T0.replace(hour=hours, minute=minutes)
    assert target >= shop.clock.now()
    shop.clock.advance(target - shop.clock.now())
    await shop.cycle()


async def post(shop: Shop, path: str, body: dict[str, Any], status: int = 201) -> Any:
    response = await shop.client.post(f"/api/v1/incidents/1/{path}", json=body)
    assert response.status == status, await response.text()
    return await response.json()


async def opening(shop: Shop) -> None:
    """09:00 UTC (10:00 in Berlin): the pool alert opens the incident and its first notice."""
    assert (await shop.post_alerts(alert(cluster="eu-1"))).status == 200
    await shop.cycle()
    first = await public(shop)
    assert first.status is IncidentStatus.INVESTIGATING
    assert first.name == "Problems with Checkout"
    assert first.updates[0].body == (
        "We are looking into a problem with Checkout.\n"
        "Some customers cannot place an order.\n"
        "Your cart is kept and no card is charged for a failed order.\n"
        "We are sorry for the trouble. Our next update will follow by 10:30 CET."
    )
    assert first.updates[0].created_at == T0
    assert first.updates[0].next_update_at == T0 + timedelta(minutes=30)
    seen = await customers_see(shop, "investigating", "partial_outage")
    assert seen["name"] == "Problems with Checkout"
    assert seen["impact"] == "major"


async def reminder_and_holding(shop: Shop) -> None:
    """09:25: the commander is reminded; 09:30: nobody wrote, so a holding update goes out."""
    await at(shop, "09:25")
    await shop.pager.wait_for(2)
    (reminder,) = shop.pager.delivered("notice_reminder")
    assert reminder["update_due_at"] == "2026-11-27T09:30:00+00:00"
    await at(shop, "09:30")
    holding = (await public(shop)).updates[0]
    assert holding.body == (
        "We are still working on the problem with Checkout.\n"
        "Your cart is kept and no card is charged for a failed order.\n"
        "Our next update will follow by 11:00 CET."
    )
    assert holding.status is IncidentStatus.INVESTIGATING
    assert holding.next_update_at == T0 + timedelta(hours=1)
    await customers_see(shop, "investigating", "partial_outage")


async def human_update_to_postmortem(shop: Shop) -> None:
    """09:40 a person's update with an ETA; 10:05 the alerts clear (monitoring); 10:20 the
    quiet period ends (resolved); 10:50 the post-incident notice."""
    await at(shop, "09:40")
    answer = await post(
        shop,
        "updates",
        {"status": "identified", "eta": "11:30", "message": "A stuck job held connections."},
    )
    assert answer["punctuality"] == "on_time"
    assert answer["body"] == (
        "We have found the cause of the problem with Checkout and are fixing it.\n"
        "A stuck job held connections.\n"
        "Your cart is kept and no card is charged for a failed order.\n"
        "We expect it to be fixed by 11:30 CET. Our next update will follow by 11:10 CET."
    )
    await customers_see(shop, "identified", "partial_outage")
    refused = await post(shop, "updates", {"status": "identified", "message": "PgBouncer"}, 422)
    assert refused["field"] == "message"
    await at(shop, "10:00")  # the holding update promised for 10:00 was superseded at 09:40
    assert (await public(shop)).updates[0].status is IncidentStatus.IDENTIFIED
    shop.clock.advance(timedelta(minutes=5))
    cleared = alert(cluster="eu-1", status="resolved", ends_at=shop.clock.now())
    assert (await shop.post_alerts(cleared)).status == 200
    await shop.cycle()
    monitoring = await public(shop)
    assert monitoring.status is IncidentStatus.MONITORING
    assert monitoring.updates[0].body == (
        "A fix is in place for Checkout and we are watching it closely.\n"
        "Your cart is kept and no card is charged for a failed order.\n"
        "Our next update will follow by 11:35 CET."
    )
    await customers_see(shop, "monitoring", "operational")
    await at(shop, "10:20")
    resolved = await public(shop)
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.resolved_at == T0.replace(hour=10, minute=20)
    assert resolved.updates[0].body.startswith(
        "The problem with Checkout is fixed and everything works normally again since 11:20 CET."
    )
    await customers_see(shop, None, "operational")
    await at(shop, "10:50")
    answer = await post(
        shop,
        "postmortem",
        {
            "impact": "About one order in five failed for 65 minutes.",
            "customer_action": "Nothing: failed orders were not charged.",
            "compensation": "A 10% voucher by email.",
            "prevention": "Connections are now freed when a job stalls.",
        },
    )
    assert answer["status"] == "postmortem"
    assert answer["body"].startswith(
        "What happened: between 10:00 CET and 11:20 CET, Checkout did not work as it should."
    )
    await shop.services.status_page.rebuild()
    (history,) = (await (await shop.client.get("/api/v2/incidents.json")).json())["incidents"]
    assert history["status"] == "postmortem"


class TestNoticeStory:
    async def test_two_hours_every_promise_kept(self, shop: Shop) -> None:
        await opening(shop)
        await reminder_and_holding(shop)
        await human_update_to_postmortem(shop)
        statuses = [update.status for update in reversed((await public(shop)).updates)]
        assert statuses == [
            IncidentStatus.INVESTIGATING,
            IncidentStatus.INVESTIGATING,
            IncidentStatus.IDENTIFIED,
            IncidentStatus.MONITORING,
            IncidentStatus.RESOLVED,
        ]
        assert late(shop) == 0
        timeline = [entry["kind"] for entry in (await shop.incident(1))["timeline"]]
        assert [kind for kind in timeline if kind.startswith("notice.")] == [
            "notice.published",
            "notice.reminded",
            "notice.holding_update",
            "notice.updated",
            "notice.reminded",
            "notice.monitoring",
            "notice.resolved",
            "notice.postmortem",
        ]
        registry = shop.services.metrics.registry
        assert registry.get_sample_value("stormwatch_notice_holding_updates_total") == 1
        assert registry.get_sample_value("stormwatch_notice_first_seconds_count") == 1

    async def test_a_replica_dies_holding_the_timers(self, shop: Shop) -> None:
        replica = second_engine(shop)  # a second engine on the same database
        assert replica.engine is not None
        owner = replica.engine.owner
        await opening(replica)
        shop.clock.advance(timedelta(minutes=25))
        async with shop.services.pool.acquire() as connection:  # claims, then is gone
            held = await timers.claim_due(
                connection, owner, shop.clock.now(), LEASE, 100, notices=True
            )
        assert [timer.kind for timer in held] == ["notice_reminder"]
        await shop.cycle()
        assert shop.pager.delivered("notice_reminder") == []
        shop.clock.advance(timedelta(minutes=5))
        await shop.cycle()  # the holding update is due; the reminder's lease still runs
        shop.clock.advance(LEASE)
        await shop.cycle()
        await shop.pager.wait_for(2)
        assert len(shop.pager.delivered("notice_reminder")) == 1
        updates = (await public(shop)).updates
        assert [u.status for u in updates] == [IncidentStatus.INVESTIGATING] * 2
        await human_update_to_postmortem(shop)
        assert len((await public(shop)).updates) == 5
        assert late(shop) == 0


async def test_the_cli_posts_updates_and_the_postmortem(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    await opening(shop)
    url = str(shop.client.make_url("")).rstrip("/")
    argv = ["update", "1", "--url", url, "--status", "identified", "--eta", "11:30", "Found it."]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "incident 1: identified\nWe have found the cause" in out
    assert "We expect it to be fixed by 11:30 CET." in out
    body = {"by": "maria", "reason": "fixed"}
    assert (await shop.client.post("/api/v1/incidents/1/resolve", json=body)).status == 200
    await shop.cycle()
    argv = [
        "postmortem",
        "1",
        "--url",
        url,
        "--impact",
        "Some orders failed.",
        "--prevention",
        "More connections.",
    ]
    assert await asyncio.to_thread(main, argv) == 0
    assert "Who was affected: Some orders failed." in capsys.readouterr().out
    argv = ["notice", "publish", "1", "--url", url]
    assert await asyncio.to_thread(main, argv) == 1
    assert "no first notice waiting" in capsys.readouterr().err


async def test_an_alert_back_in_the_quiet_period_keeps_the_notice_open(shop: Shop) -> None:
    await opening(shop)
    shop.clock.advance(timedelta(minutes=5))
    cleared = alert(cluster="eu-1", status="resolved", ends_at=shop.clock.now())
    await shop.post_alerts(cleared)
    await shop.cycle()
    assert (await public(shop)).status is IncidentStatus.MONITORING
    shop.clock.advance(timedelta(minutes=5))
    await shop.post_alerts(alert(cluster="eu-1", starts_at=shop.clock.now()))  # reopens
    await shop.cycle()
    await shop.advance(timedelta(minutes=15))  # the quiet period ends with the incident open
    assert (await public(shop)).is_open
    shop.clock.advance(timedelta(minutes=1))
    again = alert(cluster="eu-1", status="resolved", starts_at=T0 + timedelta(minutes=10))
    await shop.post_alerts({**again, "endsAt": shop.clock.now().isoformat()})
    await shop.cycle()
    await shop.advance(timedelta(minutes=15))
    assert (await public(shop)).status is IncidentStatus.RESOLVED
    assert late(shop) == 0
