"""Pages queued while an incident is open carry its impact so far, in the words the API shows;
an incident nothing has measured pages without one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from detector.domain.impact import ImpactSample, Rates
from detector.store import impact as impact_store
from tests.conftest import Shop, alert

UNREACHABLE = "orders: Prometheus unreachable"
Refresh = tuple[int, Rates | None, Rates | None, str | None]
"""Minutes after opening, order rates, revenue rates, why they could not be measured."""


def measured(minutes: int) -> Refresh:
    """A refresh ``minutes`` after opening: 1 order/s against 3, 20 revenue/s against 60."""
    return minutes, Rates(1.0, 3.0), Rates(20.0, 60.0), None


def failed(minutes: int) -> Refresh:
    """A refresh ``minutes`` after opening that Prometheus could not answer."""
    return minutes, None, None, UNREACHABLE


CASES = [
    pytest.param(
        [measured(1)],
        "about 120 orders at risk, 2,400.00 revenue at risk",
        id="a minute 2 orders/s short: 120 orders, 2,400.00 revenue",
    ),
    pytest.param(
        [measured(1), failed(2)],
        f"about 120 orders at risk, 2,400.00 revenue at risk (latest refresh: {UNREACHABLE})",
        id="a failed refresh after a measured one keeps the figures and says why",
    ),
    pytest.param(
        [failed(1)],
        f"impact unknown: {UNREACHABLE}",
        id="never measured: unknown, with the reason",
    ),
]


async def open_incident(shop: Shop) -> tuple[int, datetime]:
    """Fire the pool alert and run a cycle; the incident's id and when it opened."""
    assert (await shop.post_alerts(alert(cluster="eu-1"))).status == 200
    await shop.cycle()
    row = await shop.services.pool.fetchrow("SELECT id, opened_at FROM incidents")
    return row["id"], row["opened_at"]


async def queued_pages(shop: Shop, event: str) -> list[dict[str, Any]]:
    rows = await shop.services.pool.fetch(
        "SELECT payload FROM outbox WHERE kind = 'page' AND payload->>'event' = $1", event
    )
    return [row["payload"] for row in rows]


async def acknowledge(shop: Shop, incident_id: int) -> None:
    shop.clock.advance(timedelta(minutes=3))
    ack = await shop.client.post(f"/api/v1/incidents/{incident_id}/ack", json={"by": "maria"})
    assert ack.status == 200, await ack.text()


@pytest.mark.parametrize(("refreshes", "words"), CASES)
async def test_the_acknowledged_page_carries_the_impact_so_far(
    shop: Shop, refreshes: list[Refresh], words: str
) -> None:
    incident_id, opened_at = await open_incident(shop)
    [triggered] = await queued_pages(shop, "triggered")
    assert triggered["impact"] is None  # queued as it opened, before any refresh
    async with shop.services.pool.acquire() as connection:
        for minutes, orders, revenue, reason in refreshes:
            at = opened_at + timedelta(minutes=minutes)
            sample = ImpactSample(at, orders, revenue, unknown_reason=reason)
            await impact_store.add_sample(connection, incident_id, sample)

    await acknowledge(shop, incident_id)

    [acknowledged] = await queued_pages(shop, "acknowledged")
    assert acknowledged["impact"] == words
    assert (await shop.incident(incident_id))["impact"]["summary"] == words


async def test_an_incident_nothing_measured_pages_without_an_impact(shop: Shop) -> None:
    incident_id, _ = await open_incident(shop)

    await acknowledge(shop, incident_id)

    [acknowledged] = await queued_pages(shop, "acknowledged")
    assert acknowledged["impact"] is None
