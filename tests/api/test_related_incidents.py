"""Incidents of one component opened close together list each other as related, in the API and
on both timelines (real PostgreSQL, the fake clock)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Shop, alert, reload_edited
from tests.fakes import T0


async def open_pool_then_checkout(shop: Shop, gap: timedelta) -> tuple[int, int]:
    """The pool alert opens one incident; ``gap`` later the checkout alert opens another."""
    await shop.post_alerts(alert(cluster="eu-1"))
    await shop.cycle()
    shop.clock.advance(gap)
    await shop.post_alerts(alert("CheckoutErrorSpike", starts_at=T0 + gap, cluster="eu-1"))
    await shop.cycle()
    pool, checkout = sorted(incident["id"] for incident in await shop.incidents())
    return pool, checkout


def related_lines(detail: dict[str, Any]) -> list[dict[str, Any]]:
    return [event["detail"] for event in detail["timeline"] if event["kind"] == "incident.related"]


async def test_one_outage_links_its_incidents_both_ways(shop: Shop) -> None:
    pool, checkout = await open_pool_then_checkout(shop, timedelta(minutes=3))

    pool_detail = await shop.incident(pool)
    checkout_detail = await shop.incident(checkout)
    assert [other["id"] for other in pool_detail["related"]] == [checkout]
    assert [other["id"] for other in checkout_detail["related"]] == [pool]
    assert checkout_detail["related"][0]["title"] == "Connection pool exhausted on eu-1"
    assert checkout_detail["related"][0]["state"] == "triggered"
    assert related_lines(pool_detail) == [
        {
            "incident": checkout,
            "rule": "checkout-errors",
            "title": "Checkout errors",
            "component": "checkout",
        }
    ]
    assert related_lines(checkout_detail) == [
        {
            "incident": pool,
            "rule": "pool-exhausted",
            "title": "Connection pool exhausted on eu-1",
            "component": "checkout",
        }
    ]


async def test_incidents_opened_further_apart_are_not_related(shop: Shop) -> None:
    pool, checkout = await open_pool_then_checkout(shop, timedelta(minutes=11))
    assert (await shop.incident(pool))["related"] == []
    assert related_lines(await shop.incident(checkout)) == []


@pytest.mark.parametrize("settings_overrides", [{"related_window": timedelta(0)}])
async def test_a_zero_window_links_nothing(shop: Shop) -> None:
    pool, _ = await open_pool_then_checkout(shop, timedelta(minutes=1))
    assert (await shop.incident(pool))["related"] == []


@pytest.mark.parametrize("settings_overrides", [{"related_window": timedelta(minutes=20)}])
async def test_the_window_is_a_setting(shop: Shop) -> None:
    pool, checkout = await open_pool_then_checkout(shop, timedelta(minutes=15))
    assert [other["id"] for other in (await shop.incident(pool))["related"]] == [checkout]


async def test_a_reopened_incident_is_not_linked_again(shop: Shop) -> None:
    pool, checkout = await open_pool_then_checkout(shop, timedelta(minutes=1))
    await shop.post_alerts(
        alert(cluster="eu-1", status="resolved", ends_at=T0 + timedelta(minutes=2))
    )
    await shop.advance(timedelta(minutes=1))
    await shop.post_alerts(alert(cluster="eu-1", starts_at=T0 + timedelta(minutes=3)))
    await shop.advance(timedelta(minutes=1))
    detail = await shop.incident(pool)
    assert [event["kind"] for event in detail["timeline"]].count("incident.reopened") == 1
    assert [other["id"] for other in detail["related"]] == [checkout]
    assert len(related_lines(detail)) == 1


async def test_an_incident_opened_by_a_condition_check_is_linked_too(
    shop: Shop, rules_dir: Path
) -> None:
    """A rule with ``for:`` opens its incident from a timer, not from a signal."""
    await reload_edited(shop, rules_dir, "    auto_resolve: false\n", "    for: 2m\n")
    await shop.post_alerts(alert(cluster="eu-1"))
    await shop.post_alerts(alert("CheckoutErrorSpike", cluster="eu-1"))
    await shop.cycle()
    [pool] = await shop.incidents()
    await shop.advance(timedelta(minutes=2))
    checkout = next(i["id"] for i in await shop.incidents() if i["rule"] == "checkout-errors")
    assert [other["id"] for other in (await shop.incident(pool["id"]))["related"]] == [checkout]
