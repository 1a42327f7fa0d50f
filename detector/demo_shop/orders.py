"""What the demo shop sells and remembers: the catalogue, carts per session, orders, and the
answers already given to idempotency keys. In memory; a restart forgets everything."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Product:
    """One thing on sale; prices in cents."""

    sku: str
    name: str
    price_cents: int

    def to_json(self) -> dict[str, Any]:
        """The product as the API shows it."""
        return {"sku": self.sku, "name": self.name, "price_cents": self.price_cents}


CATALOGUE: dict[str, Product] = {
    product.sku: product
    for product in (
        Product("umbrella", "Storm umbrella", 2_490),
        Product("raincoat", "Hooded raincoat", 8_900),
        Product("boots", "Rubber boots", 5_400),
        Product("lantern", "Wind-proof lantern", 3_150),
    )
}


class OrderStatus(StrEnum):
    """Where an order stands."""

    AWAITING_PAYMENT = "awaiting_payment"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


@dataclass
class Order:
    """An order placed at checkout; ``synthetic`` orders come from probes and are not sales."""

    id: str
    session: str
    lines: dict[str, int]
    total_cents: int
    email: str
    synthetic: bool
    status: OrderStatus = OrderStatus.AWAITING_PAYMENT
    payment_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The order as the API shows it."""
        return {
            "order_id": self.id,
            "status": self.status.value,
            "lines": [{"sku": sku, "quantity": n} for sku, n in sorted(self.lines.items())],
            "total_cents": self.total_cents,
            "payment_id": self.payment_id,
            "synthetic": self.synthetic,
        }


@dataclass
class OrderBook:
    """Carts by session id, orders by id, and remembered answers by idempotency key."""

    carts: dict[str, dict[str, int]] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    answers: OrderedDict[tuple[str, str], tuple[int, dict[str, Any]]] = field(
        default_factory=OrderedDict
    )
    remember: int = 10_000
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def cart(self, session: str) -> dict[str, int]:
        """The session's cart (sku → quantity), empty when it has none."""
        return self.carts.setdefault(session, {})

    def add_to_cart(self, session: str, sku: str, quantity: int) -> dict[str, int]:
        """Put ``quantity`` more of ``sku`` in the cart."""
        cart = self.cart(session)
        cart[sku] = cart.get(sku, 0) + quantity
        return cart

    def place(self, session: str, email: str, synthetic: bool) -> Order:
        """Turn the session's cart into an order awaiting payment; the cart empties."""
        lines = dict(self.carts.pop(session, {}))
        total = sum(CATALOGUE[sku].price_cents * n for sku, n in lines.items())
        order = Order(f"o-{next(self._ids)}", session, lines, total, email, synthetic)
        self.orders[order.id] = order
        return order

    def answer(self, scope: str, key: str) -> tuple[int, dict[str, Any]] | None:
        """The answer given before to this idempotency key for this kind of request."""
        return self.answers.get((scope, key))

    def keep_answer(self, scope: str, key: str, status: int, body: dict[str, Any]) -> None:
        """Remember an answer, forgetting the oldest past ``remember`` keys."""
        self.answers[(scope, key)] = (status, body)
        while len(self.answers) > self.remember:
            self.answers.popitem(last=False)


def cart_json(cart: dict[str, int]) -> dict[str, Any]:
    """A cart as the API shows it, with its total."""
    lines = [
        {"sku": sku, "quantity": n, "price_cents": CATALOGUE[sku].price_cents}
        for sku, n in sorted(cart.items())
    ]
    total = sum(CATALOGUE[sku].price_cents * n for sku, n in cart.items())
    return {"lines": lines, "total_cents": total}
