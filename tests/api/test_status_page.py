"""The public status page on the running service: Statuspage JSON, HTML and feeds from the
in-memory snapshot, ETag/304 and caching headers, component statuses set by hand through the
API and CLI, and nothing internal in any public document."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from detector.cli import main
from detector.store import public_incidents
from detector.store.public_incidents import FirstNotice
from detector.web.status_snapshot import DOCUMENTS
from responders.statuspage.model import ComponentLevel, IncidentStatus
from tests.conftest import Shop, alert

PAGE_URL = "https://status.shop.example"
NOTICE = FirstNotice(
    "Checkout is failing for some customers",
    "Some customers cannot complete checkout. Your cart is saved. Next update by 09:30 UTC.",
    None,
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"status_page_url": PAGE_URL, "status_page_name": "Acme Shop"}


async def open_public_incident(shop: Shop, cluster: str = "eu-prod-1") -> int:
    """An alert opens an internal incident; it is published as the checkout outage."""
    assert (await shop.post_alerts(alert(cluster=cluster))).status == 200
    await shop.cycle()
    (incident,) = await shop.incidents("open")
    clock = shop.clock
    async with shop.services.pool.acquire() as connection, connection.transaction():
        notice = FirstNotice(NOTICE.name, NOTICE.body, clock.now() + timedelta(minutes=30))
        await public_incidents.open_or_join(
            connection,
            incident["id"],
            "checkout",
            ComponentLevel.PARTIAL_OUTAGE,
            notice,
            clock.now(),
        )
    await shop.services.status_page.rebuild()
    identifier: int = incident["id"]
    return identifier


async def get_json(shop: Shop, path: str) -> Any:
    response = await shop.client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_quiet_shop_is_all_operational(shop: Shop) -> None:
    summary = await get_json(shop, "/api/v2/summary.json")

    assert summary["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert [(c["name"], c["status"]) for c in summary["components"]] == [
        ("Checkout", "operational")
    ]
    assert summary["incidents"] == []
    assert summary["page"]["name"] == "Acme Shop"
    assert summary["page"]["url"] == PAGE_URL


async def test_an_open_incident_shows_on_every_document(shop: Shop) -> None:
    await open_public_incident(shop)

    summary = await get_json(shop, "/api/v2/summary.json")
    unresolved = await get_json(shop, "/api/v2/incidents/unresolved.json")
    status = await get_json(shop, "/api/v2/status.json")
    banner = await get_json(shop, "/api/v2/banner.json")
    page = await (await shop.client.get("/status")).text()
    atom = await (await shop.client.get("/history.atom")).text()

    (incident,) = summary["incidents"]
    assert incident["name"] == NOTICE.name
    assert incident["status"] == "investigating"
    assert incident["impact"] == "major"
    assert incident["incident_updates"][0]["body"] == NOTICE.body
    assert summary["components"][0]["status"] == "partial_outage"
    assert unresolved["incidents"] == [incident]
    assert status["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert banner["incidents"][0]["latest_update"] == NOTICE.body
    assert NOTICE.name in page
    assert "Partial outage" in page
    assert NOTICE.name in atom


async def test_documents_carry_etag_cache_and_cors_headers_and_answer_304(shop: Shop) -> None:
    for path in DOCUMENTS:
        response = await shop.client.get(path)
        assert response.status == 200, path
        etag = response.headers["ETag"]
        assert response.headers["Cache-Control"].startswith("public, max-age=")
        assert response.headers["Access-Control-Allow-Origin"] == "*"

        again = await shop.client.get(path, headers={"If-None-Match": f'W/{etag}, "other"'})

        assert again.status == 304, path
        assert await again.read() == b""


async def test_a_change_makes_a_new_etag(shop: Shop) -> None:
    before = (await shop.client.get("/api/v2/summary.json")).headers["ETag"]
    await open_public_incident(shop)

    response = await shop.client.get("/api/v2/summary.json", headers={"If-None-Match": before})

    assert response.status == 200
    assert response.headers["ETag"] != before


async def test_requests_never_touch_the_database(shop: Shop) -> None:
    await open_public_incident(shop)
    pool = shop.services.pool
    await pool.close()  # a request that needed a connection would now fail

    for path in DOCUMENTS:
        assert (await shop.client.get(path)).status == 200, path


async def test_public_documents_leak_nothing_internal(shop: Shop) -> None:
    incident_id = await open_public_incident(shop, cluster="eu-prod-1")
    async with shop.services.pool.acquire() as connection, connection.transaction():
        public = await public_incidents.of_incident(connection, incident_id)
        assert public is not None
        await public_incidents.add_update(
            connection,
            public.id,
            IncidentStatus.RESOLVED,
            "Checkout works again.",
            None,
            shop.clock.now(),
        )
    await shop.services.status_page.rebuild()
    internal = [
        "eu-prod-1",  # a label value
        "PgBouncer",  # the alert name
        "pool-exhausted",  # the rule name
        "Connection pool exhausted",  # the internal incident title
        "stormwatch.example",  # the service's own URL
        "127.0.0.1",
        "prometheus.example",
    ]

    for path in DOCUMENTS:
        body = (await shop.client.get(path)).text
        text = await body()
        for word in internal:
            assert word not in text, (path, word)
        if path.endswith(".json"):
            assert incident_id not in _numbers(json.loads(text)), path
        else:
            assert f"/incidents/{incident_id}" not in text, path


def _numbers(document: Any) -> set[int]:
    """Every number in a JSON document except component positions."""
    if isinstance(document, dict):
        return set().union(
            *(_numbers(value) for key, value in document.items() if key != "position")
        )
    if isinstance(document, list):
        return set().union(*(_numbers(value) for value in document))
    return {document} if isinstance(document, int) and not isinstance(document, bool) else set()


async def test_a_person_sets_and_clears_a_component_status(shop: Shop) -> None:
    put = await shop.client.put(
        "/api/v1/components/checkout/status",
        json={"status": "major_outage", "by": "maria", "reason": "payment provider down"},
    )
    assert put.status == 200, await put.text()
    await shop.services.status_page.rebuild()
    during = await get_json(shop, "/api/v2/components.json")
    listing = await get_json(shop, "/api/v1/components")

    cleared = await shop.client.delete("/api/v1/components/checkout/status")
    await shop.services.status_page.rebuild()
    after = await get_json(shop, "/api/v2/components.json")

    assert during["components"][0]["status"] == "major_outage"
    assert listing["components"][0]["set_by"] == "maria"
    assert (await cleared.json())["cleared"] is True
    assert after["components"][0]["status"] == "operational"


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/v1/components/nope/status", {"status": "major_outage"}, 404, "name"),
        ("/api/v1/components/checkout/status", {"status": "broken"}, 400, "status"),
        ("/api/v1/components/checkout/status", {"status": "major_outage", "x": 1}, 400, "x"),
    ],
)
async def test_bad_component_requests_name_the_field(
    shop: Shop, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    response = await shop.client.put(path, json=body)

    assert response.status == status
    assert (await response.json())["field"] == field


async def test_the_cli_sets_lists_and_clears(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(shop.client.make_url("")).rstrip("/")

    async def run(*argv: str) -> str:
        code = await asyncio.to_thread(main, [*argv, "--url", url])
        assert code == 0
        return capsys.readouterr().out

    set_out = await run("components", "set", "checkout", "degraded_performance", "--by", "ana")
    list_out = await run("components")
    clear_out = await run("components", "clear", "checkout")

    assert set_out.strip() == "checkout: degraded_performance (set by ana)"
    assert "checkout" in list_out
    assert "degraded_performance" in list_out
    assert clear_out.strip() == "checkout: cleared"
