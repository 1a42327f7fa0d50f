"""The demo shop over HTTP: a customer's checkout, idempotency keys, synthetic traffic kept out
of the sales, each fault seen where the shipped Prometheus rules and a journey look, and the
command that switches faults in a running shop."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector.demo_shop.pool import ConnectionPool, PoolTimeout
from detector.demo_shop.shop import Shop, ShopConfig
from detector.demo_shop.storefront import create_storefront
from detector.demo_shop.traffic import Traffic

REPO = Path(__file__).resolve().parents[2]
CARD = "4242 4242 4242 4242"
SYNTHETIC = {"X-Stormwatch-Synthetic": "1"}


@pytest.fixture
async def shop() -> AsyncIterator[tuple[Shop, TestClient]]:
    """A shop with a small pool that gives up quickly, and a client with its own cookie jar."""
    shop = Shop(ShopConfig(pool_size=2, pool_timeout=0.3, query_seconds=0.001))
    client = TestClient(TestServer(create_storefront(shop), host="127.0.0.1"))
    await client.start_server()
    yield shop, client
    await client.close()


def sample(text: str, name: str, /, **labels: str) -> float:
    """The value of one series in a text exposition (0 when absent)."""
    for line in text.splitlines():
        metric, _, value = line.rpartition(" ")
        if metric.split("{")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', metric))
        if all(found.get(key) == want for key, want in labels.items()):
            return float(value)
    return 0.0


async def metrics(client: TestClient, exporter: str = "") -> str:
    response = await client.get(f"/metrics/{exporter}" if exporter else "/metrics")
    assert response.status == 200
    return await response.text()


async def buy(
    client: TestClient, headers: dict[str, str] | None = None, card: str = CARD
) -> tuple[int, dict[str, object]]:
    """Cart, checkout and payment; the payment's status and body."""
    headers = headers or {}
    response = await client.post(
        "/api/cart/items", json={"sku": "umbrella", "quantity": 2}, headers=headers
    )
    assert response.status == 200, await response.text()
    response = await client.post("/api/checkout", json={}, headers=headers)
    assert response.status == 201, await response.text()
    order = await response.json()
    response = await client.post(
        f"/api/orders/{order['order_id']}/payment", json={"card_number": card}, headers=headers
    )
    return response.status, await response.json()


async def test_a_customer_checks_out_and_reads_the_confirmation(
    shop: tuple[Shop, TestClient],
) -> None:
    the_shop, client = shop
    status, paid = await buy(client)
    assert status == 200
    assert paid["status"] == "confirmed"
    assert paid["total_cents"] == 2 * 2_490
    response = await client.get(f"/api/orders/{paid['order_id']}")
    assert (await response.json())["status"] == "confirmed"
    text = await metrics(client)
    assert sample(text, "shop_orders_total") == 1
    assert sample(text, "shop_revenue_cents_total") == 2 * 2_490
    assert sample(text, "payment_attempts_total", provider="stripe", outcome="authorized") == 1
    assert sample(text, "postfix_showq_message_age_seconds_count", queue="active") == 1
    assert sample(text, "nginx_ingress_controller_requests", ingress="checkout", status="201") == 1
    the_shop.relay.deliver()
    assert "postfix_showq_message_age_seconds_count{" not in await metrics(client, "postfix")


async def test_another_session_cannot_see_the_order(shop: tuple[Shop, TestClient]) -> None:
    the_shop, client = shop
    _, paid = await buy(client)
    async with TestClient(TestServer(create_storefront(the_shop), host="127.0.0.1")) as stranger:
        response = await stranger.get(f"/api/orders/{paid['order_id']}")
        assert response.status == 404
        assert (await response.json())["field"] == "order_id"


async def test_an_idempotency_key_gets_the_first_answer_again(
    shop: tuple[Shop, TestClient],
) -> None:
    the_shop, client = shop
    await client.post("/api/cart/items", json={"sku": "boots"})
    key = {"Idempotency-Key": "run-1-checkout"}
    first = await client.post("/api/checkout", json={}, headers=key)
    again = await client.post("/api/checkout", json={}, headers=key)
    assert first.status == again.status == 201
    assert (await first.json()) == (await again.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(the_shop.book.orders) == 1
    order_id = (await first.json())["order_id"]
    pay_key = {"Idempotency-Key": "run-1-pay"}
    for _ in range(2):
        response = await client.post(
            f"/api/orders/{order_id}/payment", json={"card_number": CARD}, headers=pay_key
        )
        assert response.status == 200
    assert sample(await metrics(client), "shop_orders_total") == 1


async def test_synthetic_orders_are_served_but_kept_out_of_the_sales(
    shop: tuple[Shop, TestClient],
) -> None:
    _, client = shop
    status, paid = await buy(client, SYNTHETIC)
    assert status == 200
    assert paid["synthetic"] is True
    text = await metrics(client)
    assert sample(text, "shop_orders_total") == 0
    assert sample(text, "shop_revenue_cents_total") == 0
    assert sample(text, "shop_synthetic_orders_total") == 1
    assert sample(text, "payment_attempts_total", outcome="authorized") == 0
    # The provider saw the call: an outage would fail the probe too.
    assert (
        sample(text, "http_client_request_duration_seconds_count", server_address="api.stripe.com")
        == 1
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sku": "yacht"}, "sku"),
        ({"sku": "boots", "quantity": 0}, "quantity"),
        ({"sku": "boots", "colour": "red"}, "colour"),
    ],
    ids=["unknown-product", "no-quantity", "unknown-field"],
)
async def test_bad_cart_input_is_a_400_naming_the_field(
    shop: tuple[Shop, TestClient], body: dict[str, object], field: str
) -> None:
    _, client = shop
    response = await client.post("/api/cart/items", json=body)
    assert response.status == 400
    assert (await response.json())["field"] == field


async def test_pool_exhaustion_queues_checkout_then_fails_and_shows_in_the_pool_gauges(
    shop: tuple[Shop, TestClient],
) -> None:
    the_shop, client = shop
    await client.post("/api/cart/items", json={"sku": "boots"})
    response = await client.post("/faults", json={"name": "pool-exhaustion"})
    assert (await response.json())["faults"] == [{"name": "pool-exhaustion"}]
    checkout = asyncio.create_task(client.post("/api/checkout", json={}))
    await asyncio.sleep(0.1)  # the request is queued for a connection now
    pgbouncer = await metrics(client, "pgbouncer")
    assert sample(pgbouncer, "pgbouncer_pools_client_waiting_connections", database="shop") == 1
    assert sample(pgbouncer, "pgbouncer_pools_server_idle_connections", database="shop") == 0
    hikari = await metrics(client, "hikaricp")
    assert sample(hikari, "hikaricp_connections_pending") == 1
    assert sample(hikari, "hikaricp_connections_active") == sample(
        hikari, "hikaricp_connections_max"
    )
    failed = await checkout
    assert failed.status == 503
    assert "no database connection" in (await failed.json())["error"]
    ingress = await metrics(client, "ingress-nginx")
    assert (
        sample(ingress, "nginx_ingress_controller_requests", ingress="checkout", status="503") == 1
    )

    response = await client.delete("/faults/pool-exhaustion")
    assert (await response.json()) == {"cleared": True, "faults": []}
    assert (await client.post("/api/checkout", json={})).status == 201
    assert the_shop.pool.gauges().idle == 2


async def test_payment_provider_down_fails_payment_with_502(shop: tuple[Shop, TestClient]) -> None:
    _, client = shop
    await client.post("/faults", json={"name": "payment-down"})
    status, body = await buy(client)
    assert (status, body["error"]) == (502, "the payment provider is unavailable")
    payments = await metrics(client, "payments")
    assert (
        sample(
            payments,
            "http_client_request_duration_seconds_count",
            http_response_status_code="503",
            error_type="503",
        )
        == 1
    )
    assert sample(payments, "payment_attempts_total", outcome="error") == 1


async def test_a_declined_card_is_a_402_not_a_provider_error(shop: tuple[Shop, TestClient]) -> None:
    _, client = shop
    status, body = await buy(client, card="4000000000000002")
    assert (status, body["field"]) == (402, "card_number")
    payments = await metrics(client, "payments")
    assert sample(payments, "payment_attempts_total", outcome="declined") == 1


async def test_added_latency_slows_storefront_requests(shop: tuple[Shop, TestClient]) -> None:
    _, client = shop
    await client.post("/faults", json={"name": "latency", "seconds": 0.3})
    started = asyncio.get_running_loop().time()
    assert (await client.get("/api/products")).status == 200
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert (await (await client.get("/faults")).json())["faults"] == [
        {"name": "latency", "seconds": 0.3}
    ]


async def test_a_stuck_mail_relay_keeps_confirmations_queued(shop: tuple[Shop, TestClient]) -> None:
    the_shop, client = shop
    await client.post("/faults", json={"name": "mail-stuck"})
    await buy(client)
    assert the_shop.relay.deliver() == 0
    postfix = await metrics(client, "postfix")
    assert sample(postfix, "postfix_showq_message_age_seconds_count", queue="active") == 1
    await client.delete("/faults/mail-stuck")
    assert the_shop.relay.deliver() == 1


async def test_a_stuck_failover_refuses_writes_and_clearing_it_promotes_the_other_member(
    shop: tuple[Shop, TestClient],
) -> None:
    _, client = shop
    await client.post("/faults", json={"name": "failover-stuck"})
    response = await client.post("/api/cart/items", json={"sku": "boots"})
    assert response.status == 503
    patroni = await metrics(client, "patroni")
    assert sample(patroni, "patroni_cluster_unlocked", scope="shop-db") == 1
    assert sample(patroni, "patroni_primary", name="shop-db-1") == 0
    await client.delete("/faults/failover-stuck")
    patroni = await metrics(client, "patroni")
    assert sample(patroni, "patroni_primary", name="shop-db-2") == 1
    assert sample(patroni, "patroni_postgres_timeline", name="shop-db-2") == 2
    assert (await client.post("/api/cart/items", json={"sku": "boots"})).status == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "meteor"}, 400, "name"),
        ({"name": "payment-down", "seconds": 3}, 400, "body"),
        ({"name": "latency", "seconds": -1}, 400, "seconds"),
    ],
    ids=["unknown-fault", "seconds-on-another-fault", "negative-latency"],
)
async def test_bad_fault_requests_name_the_field(
    shop: tuple[Shop, TestClient], body: dict[str, object], status: int, field: str
) -> None:
    _, client = shop
    response = await client.post("/faults", json=body)
    assert response.status == status
    assert (await response.json())["field"] == field


async def test_clearing_an_unknown_fault_is_a_404(shop: tuple[Shop, TestClient]) -> None:
    _, client = shop
    response = await client.delete("/faults/meteor")
    assert response.status == 404


async def test_background_shoppers_move_the_sales_counters(shop: tuple[Shop, TestClient]) -> None:
    _, client = shop
    traffic = Traffic(str(client.make_url("/")), rate=50)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.5):
            await traffic.run()
    assert traffic.completed >= 3
    assert sample(await metrics(client), "shop_orders_total") >= traffic.completed


async def test_a_handover_at_the_timeout_returns_the_connection() -> None:
    pool = ConnectionPool(size=1, timeout=0.05)
    async with pool.connection():
        with pytest.raises(PoolTimeout):
            async with pool.connection():
                pass
    assert pool.gauges().idle == 1
    assert pool.gauges().waiting == 0


async def test_the_command_switches_faults_in_a_running_shop(
    shop: tuple[Shop, TestClient],
) -> None:
    the_shop, client = shop
    url = str(client.make_url("")).rstrip("/")
    command = [sys.executable, "-m", "detector", "demo-shop", "fault", "pool-exhaustion"]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--url", url, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO,
        )

    result = await asyncio.to_thread(run)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "faults on: pool-exhaustion"
    assert the_shop.pool.gauges().idle == 0
    result = await asyncio.to_thread(run, "--clear")
    assert result.stdout.strip() == "faults on: none"
    assert the_shop.pool.gauges().idle == 2


def test_the_shop_stands_alone() -> None:
    """Nothing in the shop imports detection code: it is what Stormwatch watches."""
    allowed = {"detector.demo_shop", "detector.api_client"}
    for path in (REPO / "detector" / "demo_shop").glob("*.py"):
        for name in re.findall(r"^\s*(?:from|import) (detector[\w.]*)", path.read_text(), re.M):
            assert any(name == a or name.startswith(a + ".") for a in allowed), (path, name)
