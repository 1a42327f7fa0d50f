"""One outage, one page: the rule naming the cause supersedes the rules of its symptoms.

The real service and PostgreSQL, real HTTP pages, the fake clock. An exhausted pool in eu-1
fires PgBouncerPoolSaturated and, as checkout requests fail, CheckoutErrorSpike: three rules
match, three incidents are recorded, and only the one naming the cause pages.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Shop, alert
from tests.fakes import T0, PageReceiver

SUPERSEDING_RULES = """
components:
  - name: checkout
    display_name: Checkout
channels:
  - name: pager
    type: webhook
    url: {pager_url}
  - name: backup
    type: webhook
    url: {backup_url}
escalation_policies:
  - name: oncall
    steps:
      - notify: [pager]
        escalate_after: 5m
      - notify: [backup]
rules:
  - name: pool-exhausted
    match: ['alertname="PgBouncerPoolSaturated"']
    group_by: [cluster, database]
    severity: critical
    title: "Connection pool exhausted on {{{{ labels.cluster }}}}"
    component: checkout
    escalation_policy: oncall
  - name: checkout-errors
    match: ['alertname="CheckoutErrorSpike"']
    group_by: [cluster]
    severity: major
    title: "Checkout errors on {{{{ labels.cluster }}}}"
    component: checkout
    escalation_policy: oncall
  - name: checkout-failing-pool-exhausted
    all_of:
      - ['alertname="PgBouncerPoolSaturated"']
      - ['alertname="CheckoutErrorSpike"']
    group_by: [cluster]
    severity: critical
    title: "Checkout failing: pool exhausted on {{{{ labels.cluster }}}}"
    summary: Orders cannot get a database connection.
    component: checkout
    escalation_policy: oncall
    supersedes: {{rules: [pool-exhausted, checkout-errors], equal: [cluster]}}
"""


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    text = SUPERSEDING_RULES.format(pager_url=pager.url, backup_url=backup.url)
    (directory / "shop.yml").write_text(text)
    return directory


POOL = alert(cluster="eu-1", database="orders")
CHECKOUT = alert("CheckoutErrorSpike", cluster="eu-1", service="checkout")


async def ids_by_rule(shop: Shop) -> dict[str, int]:
    return {incident["rule"]: incident["id"] for incident in await shop.incidents()}


def lines(detail: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in detail["timeline"] if event["kind"] == kind]


async def test_one_pool_exhaustion_records_three_incidents_and_pages_once(shop: Shop) -> None:
    assert (await shop.post_alerts(POOL, CHECKOUT)).status == 200
    await shop.cycle()

    ids = await ids_by_rule(shop)
    assert sorted(ids) == ["checkout-errors", "checkout-failing-pool-exhausted", "pool-exhausted"]
    cause = ids["checkout-failing-pool-exhausted"]
    [page] = shop.pager.requests
    assert page["incident"]["id"] == cause
    assert page["incident"]["title"] == "Checkout failing: pool exhausted on eu-1"

    cause_detail = await shop.incident(cause)
    assert cause_detail["supersedes"] == sorted([ids["pool-exhausted"], ids["checkout-errors"]])
    linked = [line["incident"] for line in lines(cause_detail, "incident.supersedes")]
    assert sorted(linked) == cause_detail["supersedes"]
    for symptom in ("pool-exhausted", "checkout-errors"):
        detail = await shop.incident(ids[symptom])
        assert detail["state"] == "triggered"
        assert detail["superseded_by"] == [cause]
        assert lines(detail, "incident.superseded") == [
            {
                "by": cause,
                "rule": "checkout-failing-pool-exhausted",
                "title": "Checkout failing: pool exhausted on eu-1",
            }
        ]
        assert lines(detail, "pages.deferred") == [
            {"by": cause, "rule": "checkout-failing-pool-exhausted", "channels": ["pager"]}
        ]

    # Five minutes on, only the cause escalates: the symptoms' steps wait for it.
    await shop.advance(timedelta(minutes=5))
    [escalated] = shop.backup.requests
    assert escalated["incident"]["id"] == cause
    assert len(shop.pager.requests) == 1


async def test_a_symptom_outliving_its_cause_pages_then(shop: Shop) -> None:
    await shop.post_alerts(POOL, CHECKOUT)
    await shop.cycle()
    ids = await ids_by_rule(shop)
    cause, checkout = ids["checkout-failing-pool-exhausted"], ids["checkout-errors"]
    ended = T0 + timedelta(minutes=2)
    await shop.post_alerts({**POOL, "status": "resolved", "endsAt": ended.isoformat()})
    shop.clock.advance(timedelta(minutes=2))
    await shop.cycle()
    assert (await shop.incident(ids["pool-exhausted"]))["state"] == "resolved"
    assert (await shop.incident(cause))["state"] == "triggered"  # checkout errors still fire

    resolved = await shop.client.post(f"/api/v1/incidents/{cause}/resolve", json={"by": "maria"})
    assert resolved.status == 200
    await shop.cycle()

    [cause_resolved] = shop.pager.delivered("resolved")
    assert cause_resolved["incident"]["id"] == cause
    assert cause_resolved["incident"]["summary"] == (
        f"Orders cannot get a database connection. Covers #{checkout}, still open:"
        " they page on their own from now on."
    )
    [page] = [p for p in shop.pager.delivered("triggered") if p["incident"]["id"] == checkout]
    assert page["escalation_step"] == 0
    assert page["incident"]["title"] == "Checkout errors on eu-1"
    [resolution] = lines(await shop.incident(cause), "incident.resolved")
    assert resolution["covers"] == [checkout]

    # From there, the normal escalation: the backup five minutes after the page.
    await shop.advance(timedelta(minutes=4, seconds=59))
    assert shop.backup.requests == []
    await shop.advance(timedelta(seconds=1))
    [escalated] = shop.backup.requests
    assert escalated["incident"]["id"] == checkout


async def test_an_ack_on_the_cause_names_the_incidents_it_covers(shop: Shop) -> None:
    await shop.post_alerts(POOL, CHECKOUT)
    await shop.cycle()
    ids = await ids_by_rule(shop)
    cause = ids["checkout-failing-pool-exhausted"]
    covered = sorted([ids["pool-exhausted"], ids["checkout-errors"]])

    ack = await shop.client.post(f"/api/v1/incidents/{cause}/ack", json={"by": "maria"})
    assert await ack.json() == {"id": cause, "result": "acknowledged"}
    await shop.cycle()

    [acknowledged] = lines(await shop.incident(cause), "incident.acknowledged")
    assert acknowledged == {"by": "maria", "via": "api", "covers": covered}
    [follow_up] = shop.pager.delivered("acknowledged")
    named = ", ".join(f"#{incident_id}" for incident_id in covered)
    assert follow_up["incident"]["summary"] == (
        f"Orders cannot get a database connection. Covers {named}."
    )
    assert set(follow_up["incident"]) == set(shop.pager.requests[0]["incident"])
    # The symptoms were never paged, so they hear nothing of the ack.
    assert [p["incident"]["id"] for p in shop.pager.requests] == [cause, cause]


async def test_a_cause_opening_later_holds_back_the_next_steps_of_a_paged_symptom(
    shop: Shop,
) -> None:
    await shop.post_alerts(POOL)
    await shop.cycle()
    [pool_page] = shop.pager.requests
    pool = pool_page["incident"]["id"]

    shop.clock.advance(timedelta(minutes=1))
    await shop.post_alerts({**CHECKOUT, "startsAt": (T0 + timedelta(minutes=1)).isoformat()})
    await shop.cycle()
    ids = await ids_by_rule(shop)
    cause = ids["checkout-failing-pool-exhausted"]
    assert [p["incident"]["id"] for p in shop.pager.requests] == [pool, cause]
    assert (await shop.incident(pool))["superseded_by"] == [cause]

    # The pool's step 1 falls due at 5m: held while the cause is open; the cause's own at 6m.
    await shop.advance(timedelta(minutes=4))
    assert shop.backup.requests == []
    assert lines(await shop.incident(pool), "pages.deferred")[-1]["channels"] == ["backup"]
    await shop.advance(timedelta(minutes=1))
    assert [p["incident"]["id"] for p in shop.backup.requests] == [cause]

    await shop.client.post(f"/api/v1/incidents/{cause}/resolve", json={"by": "maria"})
    await shop.cycle()
    assert [p["incident"]["id"] for p in shop.backup.delivered("triggered")] == [cause, pool]


async def test_a_cause_in_another_cluster_supersedes_nothing(shop: Shop) -> None:
    await shop.post_alerts(POOL, CHECKOUT)
    await shop.cycle()
    await shop.post_alerts(alert(cluster="us-1", database="orders"))
    await shop.cycle()
    us_pool = next(
        i["id"] for i in await shop.incidents() if i["title"] == "Connection pool exhausted on us-1"
    )
    assert [p["incident"]["id"] for p in shop.pager.requests][-1] == us_pool
    assert "superseded_by" not in await shop.incident(us_pool)


async def test_a_storm_of_symptoms_pages_nobody_and_links_each_incident_once(shop: Shop) -> None:
    """1,000 pool alerts over 20 databases while the cause is open: 20 incidents held, each
    looked up, linked and deferred once (per decision that opens it, not per alert)."""
    await shop.post_alerts(POOL, CHECKOUT)
    await shop.cycle()
    storm = [alert(cluster="eu-1", database=f"db{n % 20}", pool=f"p{n}") for n in range(1000)]
    for start in range(0, len(storm), 100):
        assert (await shop.post_alerts(*storm[start : start + 100])).status == 200
    for _ in range(5):
        await shop.cycle()

    held = [i for i in await shop.incidents() if i["rule"] == "pool-exhausted"]
    assert len(held) == 21
    assert len(shop.pager.requests) == 1
    for incident in held:
        detail = await shop.incident(incident["id"])
        assert len(lines(detail, "incident.superseded")) == 1
        assert len(lines(detail, "pages.deferred")) == 1
