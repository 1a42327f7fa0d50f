"""The shop behind the storefront: carts, checkout, payment and confirmation through a database
pool, a payment provider and a mail relay, each of which a fault can break."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from detector.demo_shop.database_cluster import DatabaseCluster
from detector.demo_shop.exporters import ShopMetrics
from detector.demo_shop.faults import ActiveFaults, Fault, FaultRequest
from detector.demo_shop.mail_relay import MailRelay
from detector.demo_shop.orders import CATALOGUE, Order, OrderBook, OrderStatus
from detector.demo_shop.payment_gateway import ChargeOutcome, PaymentGateway
from detector.demo_shop.pool import ConnectionPool, PoolTimeout


@dataclass(frozen=True, slots=True)
class ShopConfig:
    """How big and how patient the shop is."""

    pool_size: int = 10
    pool_timeout: float = 5.0
    """Seconds a request queues for a database connection before it fails."""
    query_seconds: float = 0.005
    """How long each request holds its connection."""


class ShopError(Exception):
    """A request the shop refuses: the HTTP status, and the field at fault if any."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class Shop:
    """Everything the storefront's handlers act on; faults change its parts."""

    def __init__(self, config: ShopConfig | None = None) -> None:
        self.config = config or ShopConfig()
        self.pool = ConnectionPool(self.config.pool_size, self.config.pool_timeout)
        self.book = OrderBook()
        self.gateway = PaymentGateway()
        self.relay = MailRelay()
        self.cluster = DatabaseCluster()
        self.faults = ActiveFaults()
        self.metrics = ShopMetrics(self.pool, self.relay, self.cluster)

    def set_fault(self, request: FaultRequest) -> None:
        """Break a part of the shop (again: only the latency changes)."""
        fresh = request.name not in self.faults
        self.faults.set(request)
        if not fresh:
            return
        match request.name:
            case Fault.POOL_EXHAUSTION:
                self.pool.exhaust()
            case Fault.PAYMENT_DOWN:
                self.gateway.down = True
            case Fault.MAIL_STUCK:
                self.relay.stuck = True
            case Fault.FAILOVER_STUCK:
                self.cluster.lose_primary()

    def clear_fault(self, fault: Fault) -> bool:
        """Repair a part; False when it was not broken."""
        if not self.faults.clear(fault):
            return False
        match fault:
            case Fault.POOL_EXHAUSTION:
                self.pool.recover()
            case Fault.PAYMENT_DOWN:
                self.gateway.down = False
            case Fault.MAIL_STUCK:
                self.relay.stuck = False
            case Fault.FAILOVER_STUCK:
                self.cluster.complete_failover()
        return True

    @asynccontextmanager
    async def database(self, write: bool) -> AsyncIterator[None]:
        """A connection for one request's queries; a write needs a primary."""
        try:
            async with self.pool.connection():
                if write and not self.cluster.writable:
                    raise ShopError(503, "the database accepts no writes (no primary)")
                await asyncio.sleep(self.config.query_seconds)
                yield
        except PoolTimeout as err:
            raise ShopError(503, str(err)) from None

    async def add_to_cart(self, session: str, sku: str, quantity: int) -> dict[str, int]:
        """Put a product in the session's cart."""
        if sku not in CATALOGUE:
            raise ShopError(400, f"no product {sku!r}", field="sku")
        async with self.database(write=True):
            return self.book.add_to_cart(session, sku, quantity)

    async def checkout(self, session: str, email: str, synthetic: bool) -> Order:
        """Turn the cart into an order awaiting payment."""
        if not self.book.cart(session):
            raise ShopError(409, "the cart is empty", field="cart")
        async with self.database(write=True):
            return self.book.place(session, email, synthetic)

    async def pay(self, session: str, order_id: str, card_number: str) -> Order:
        """Charge the card and confirm the order; its confirmation goes to the mail relay."""
        order = await self.order(session, order_id)
        if order.status is not OrderStatus.AWAITING_PAYMENT:
            raise ShopError(409, f"the order is {order.status.value}", field="order_id")
        started = time.perf_counter()
        charge = await self.gateway.charge(card_number, order.total_cents)
        self.metrics.charge(charge, time.perf_counter() - started, order.synthetic)
        if charge.outcome is ChargeOutcome.ERROR:
            raise ShopError(502, "the payment provider is unavailable")
        if charge.outcome is ChargeOutcome.DECLINED:
            raise ShopError(402, "the card was declined", field="card_number")
        async with self.database(write=True):
            order.status = OrderStatus.CONFIRMED
            order.payment_id = charge.payment_id
        self.metrics.order_confirmed(order.total_cents, order.synthetic)
        self.relay.enqueue(order.email, f"Your order {order.id}")
        return order

    async def order(self, session: str, order_id: str) -> Order:
        """One of the session's orders."""
        async with self.database(write=False):
            order = self.book.orders.get(order_id)
        if order is None or order.session != session:
            raise ShopError(404, "no such order", field="order_id")
        return order

    async def cancel(self, session: str, order_id: str) -> Order:
        """Cancel an order (a probe's clean-up); a paid one is refunded in the sandbox."""
        order = await self.order(session, order_id)
        async with self.database(write=True):
            order.status = OrderStatus.CANCELLED
        return order
