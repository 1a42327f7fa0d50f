"""First notices that wait: a veto window the commander can veto or edit in, a draft a person
publishes; one public incident per component however many incidents join it; nothing public
while a silence holds the incident."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.store import public_incidents
from responders.statuspage.model import IncidentStatus, PublicIncident
from tests.conftest import RULES, Shop, alert
from tests.fakes import PageReceiver

POOL_NOTICE = """    reopen_within: 10m
    notice:
      publish: after 5m unless vetoed
      impact: Some customers cannot place an order.
"""
ERRORS_NOTICE = """    resolve_after: 15m
    notice:
      publish: draft
"""
SILENCE = """silences:
  - name: eu-2-drill
    match: ['cluster="eu-2"']
    starts_at: 2026-11-27T08:30:00Z
    ends_at: 2026-11-27T10:00:00Z
    comment: failover drill
    created_by: maria
"""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"status_page_time_zone": "Europe/Berlin"}


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    text = RULES.format(pager_url=pager.url, backup_url=backup.url)
    text = text.replace("    reopen_within: 10m\n", POOL_NOTICE, 1)
    text = text.replace("    resolve_after: 15m\n", ERRORS_NOTICE, 1)
    (directory / "shop.yml").write_text(text)
    (directory / "silences.yml").write_text(SILENCE)
    return directory


async def public_of(shop: Shop, incident_id: int) -> PublicIncident | None:
    async with shop.services.pool.acquire() as connection:
        return await public_incidents.of_incident(connection, incident_id)


async def notice(shop: Shop, action: str, body: dict[str, Any], status: int = 200) -> Any:
    response = await shop.client.post(f"/api/v1/incidents/1/notice/{action}", json=body)
    assert response.status == status, await response.text()
    return await response.json()


class TestVetoWindow:
    async def test_a_vetoed_notice_never_goes_out(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        assert await public_of(shop, 1) is None
        await notice(shop, "veto", {"by": "maria"})
        assert (await notice(shop, "veto", {"by": "maria"}, 409))["field"] == "id"
        await shop.advance(timedelta(minutes=5))
        assert await public_of(shop, 1) is None

    async def test_an_edited_notice_goes_out_in_its_editors_words(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        words = "Some orders fail. Your cart is kept. Next update by 10:35 CET."
        refused = await notice(shop, "edit", {"body": "PgBouncer pool at 10.0.0.4"}, 422)
        assert refused["error"] == "internal jargon: 10.0.0.4, PgBouncer"
        await notice(shop, "edit", {"by": "maria", "body": words, "name": "Orders failing"})
        waiting = await (await shop.client.get("/api/v1/incidents/1/notice")).json()
        assert waiting["draft"]["state"] == "waiting"
        assert waiting["draft"]["body"] == words
        assert waiting["draft"]["publish_at"] == "2026-11-27T09:05:00+00:00"
        assert waiting["public_incident"] is None
        await shop.advance(timedelta(minutes=4, seconds=59))
        assert await public_of(shop, 1) is None
        await shop.advance(timedelta(seconds=1))
        published = await public_of(shop, 1)
        assert published is not None
        assert (published.name, published.updates[0].body) == ("Orders failing", words)
        shown = await (await shop.client.get("/api/v1/incidents/1/notice")).json()
        assert shown["draft"]["state"] == "published"
        assert shown["public_incident"]["status"] == "investigating"
        assert shown["public_incident"]["next_update_at"] == "2026-11-27T09:35:00+00:00"
        registry = shop.services.metrics.registry
        assert registry.get_sample_value("stormwatch_notice_first_seconds_sum") == 300


class TestDraftAndJoin:
    async def test_one_outage_one_public_incident(self, shop: Shop) -> None:
        await shop.post_alerts(alert("CheckoutErrorSpike"))
        await shop.cycle()
        assert await public_of(shop, 1) is None  # a draft waits for a person
        await notice(shop, "publish", {"by": "maria"})
        opened = await public_of(shop, 1)
        assert opened is not None
        assert len(opened.updates) == 1
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.advance(timedelta(minutes=5))  # the pool incident's veto window ends
        joined = await public_of(shop, 2)
        assert joined is not None
        assert joined.id == opened.id
        assert len(joined.updates) == 1
        body = {"by": "maria", "reason": "fixed"}
        assert (await shop.client.post("/api/v1/incidents/1/resolve", json=body)).status == 200
        await shop.cycle()
        kept = await public_of(shop, 1)
        assert kept is not None
        assert kept.is_open
        assert (await shop.client.post("/api/v1/incidents/2/resolve", json=body)).status == 200
        await shop.cycle()
        closed = await public_of(shop, 2)
        assert closed is not None
        assert closed.status is IncidentStatus.RESOLVED

    async def test_a_silenced_incident_publishes_nothing(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-2"))
        await shop.cycle()
        await shop.advance(timedelta(minutes=10))
        assert await public_of(shop, 1) is None
        assert (await notice(shop, "publish", {}, 409))["field"] == "id"
