"""Background shoppers, so the shop's counters move without anyone clicking: each one browses,
fills a cart, checks out, pays and reads the confirmation over HTTP, as a customer would (no
synthetic header: these are the shop's sales)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from detector.demo_shop.orders import CATALOGUE
from detector.demo_shop.payment_gateway import DECLINED_CARD
from detector.demo_shop.storefront import IDEMPOTENCY_HEADER

GOOD_CARD = "4242424242424242"
DECLINE_SHARE = 0.03
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


class Traffic:
    """Starts ``rate`` shoppers per second on average (at most ``max_in_flight`` at once)."""

    def __init__(
        self,
        base_url: str,
        rate: float,
        rng: random.Random | None = None,
        max_in_flight: int = 50,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._rate = rate
        self._rng = rng or random.Random()  # noqa: S311 - shoppers, not secrets
        self._slots = asyncio.Semaphore(max_in_flight)
        self.completed = 0
        self.failed = 0

    async def run(self) -> None:
        """Send shoppers until cancelled; each waits its turn for a free slot."""
        connector = aiohttp.TCPConnector(limit=0)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                await asyncio.sleep(self._rng.expovariate(self._rate))
                if self._slots.locked():
                    continue  # the shop is slow enough that shoppers pile up: skip this one
                await self._slots.acquire()
                task = asyncio.create_task(self._shopper(connector))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await connector.close()

    async def _shopper(self, connector: aiohttp.BaseConnector) -> None:
        try:
            async with aiohttp.ClientSession(
                connector=connector,
                connector_owner=False,
                cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies from an IP address too
                timeout=REQUEST_TIMEOUT,
                raise_for_status=True,
            ) as session:
                await self._shop(session)
            self.completed += 1
        except (aiohttp.ClientError, TimeoutError):
            self.failed += 1  # a broken shop loses customers; they do not retry
        finally:
            self._slots.release()

    async def _shop(self, session: aiohttp.ClientSession) -> None:
        base = self._base
        async with session.get(f"{base}/api/products"):
            pass
        sku = self._rng.choice(list(CATALOGUE))
        item = {"sku": sku, "quantity": self._rng.randint(1, 3)}
        async with session.post(f"{base}/api/cart/items", json=item):
            pass
        key = {IDEMPOTENCY_HEADER: uuid.uuid4().hex}
        async with session.post(f"{base}/api/checkout", json={}, headers=key) as response:
            order_id = (await response.json())["order_id"]
        card = DECLINED_CARD if self._rng.random() < DECLINE_SHARE else GOOD_CARD
        payment = {"card_number": card}
        key = {IDEMPOTENCY_HEADER: uuid.uuid4().hex}
        async with session.post(f"{base}/api/orders/{order_id}/payment", json=payment, headers=key):
            pass
        async with session.get(f"{base}/api/orders/{order_id}"):
            pass


def traffic_context(base_url: str, rate: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run shoppers for as long as the application runs."""

    async def run(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(Traffic(base_url, rate).run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run
