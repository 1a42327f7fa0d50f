"""The demo shop's HTTP side: a JSON storefront, its metrics and the fault switches.

A customer (or a journey) browses ``/api/products`` (one: ``/api/products/{sku}``), fills a
cart (``POST /api/cart/items``; the cart lives in the ``shop_session`` cookie's session), checks
out (``POST /api/checkout``), pays (``POST /api/orders/{id}/payment``) and reads the confirmation
(``GET /api/orders/{id}``); ``POST /api/orders/{id}/cancel`` cancels. Checkout and payment
honour ``Idempotency-Key``: the same key in the same session gets the first answer again, not a
second order or charge. Requests carrying ``X-Stormwatch-Synthetic`` are served like any other
but kept out of the sales counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.demo_shop.exporters import EXPORTERS
from detector.demo_shop.faults import Fault, FaultRequest
from detector.demo_shop.orders import CATALOGUE, Order, cart_json
from detector.demo_shop.shop import Shop, ShopError

SESSION_COOKIE = "shop_session"
SYNTHETIC_HEADER = "X-Stormwatch-Synthetic"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SHOP = web.AppKey("shop", Shop)
_SESSION = web.RequestKey("session", str)
_NOT_SYNTHETIC = {"", "0", "false", "no"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", bound=BaseModel)
Answer = tuple[int, dict[str, Any]]
"""A status and a JSON body."""


class CartItem(BaseModel):
    """Body of ``POST /api/cart/items``."""

    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1, le=99)


class CheckoutBody(BaseModel):
    """Body of ``POST /api/checkout``."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(default="customer@example.test", min_length=3, max_length=254)


class PaymentBody(BaseModel):
    """Body of ``POST /api/orders/{id}/payment``: a sandbox card number."""

    model_config = ConfigDict(extra="forbid")
    card_number: str = Field(min_length=12, max_length=23, pattern=r"^[0-9 ]+$")


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    """A JSON error naming the field at fault."""
    return {"error": message, "field": field} if field else {"error": message}


def error(status: int, message: str, field: str | None = None) -> web.Response:
    """A JSON error response naming the field at fault."""
    return web.json_response(error_body(message, field), status=status)


def is_synthetic(request: web.Request) -> bool:
    """Whether a probe sent the request (any value but an empty or negative one)."""
    value = request.headers.get(SYNTHETIC_HEADER)
    return value is not None and value.strip().lower() not in _NOT_SYNTHETIC


def ingress_of(path: str) -> str | None:
    """Which ingress a real shop would serve a path through (None: not storefront traffic)."""
    if path.startswith("/api/products"):
        return "storefront"
    if path.startswith(("/api/cart", "/api/checkout", "/api/orders")):
        return "checkout"
    return None


@web.middleware
async def storefront_edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For storefront paths: the session cookie, the latency fault, shop errors as JSON, and
    the ingress's request counter and timing."""
    ingress = ingress_of(request.path)
    if ingress is None:
        return await handler(request)
    shop = request.app[SHOP]
    started = time.perf_counter()
    session = request.cookies.get(SESSION_COOKIE) or uuid.uuid4().hex
    request[_SESSION] = session
    if shop.faults.latency_seconds:
        await asyncio.sleep(shop.faults.latency_seconds)
    try:
        response = await handler(request)
    except ShopError as err:
        response = error(err.status, str(err), err.field)
    if request.cookies.get(SESSION_COOKIE) != session:
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Lax")
    shop.metrics.request(ingress, request.method, response.status, time.perf_counter() - started)
    return response


async def _body(request: web.Request, model: type[Body]) -> Body:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ShopError(400, first["msg"], field=field) from None


async def _idempotent(request: web.Request, act: Callable[[], Awaitable[Answer]]) -> web.Response:
    """Answer a repeated ``Idempotency-Key`` with the first answer; server errors are not kept,
    so a retry after one can still succeed."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if not key:
        status, body = await act()
        return web.json_response(body, status=status)
    book = request.app[SHOP].book
    scope = f"{request[_SESSION]} {request.method} {request.path}"
    known = book.answer(scope, key)
    if known is not None:
        status, body = known
        return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
    try:
        status, body = await act()
    except ShopError as err:
        status, body = err.status, error_body(str(err), err.field)
    if status < 500:
        book.keep_answer(scope, key, status, body)
    return web.json_response(body, status=status)


def _order(order: Order) -> web.Response:
    return web.json_response(order.to_json())


async def products(_request: web.Request) -> web.Response:
    """``GET /api/products``."""
    return web.json_response({"products": [p.to_json() for p in CATALOGUE.values()]})


async def product(request: web.Request) -> web.Response:
    """``GET /api/products/{sku}``: one product, and whether it can be ordered."""
    found = CATALOGUE.get(request.match_info["sku"])
    if found is None:
        return error(404, "no such product", field="sku")
    return web.json_response({**found.to_json(), "available": True})


async def show_cart(request: web.Request) -> web.Response:
    """``GET /api/cart``."""
    return web.json_response(cart_json(request.app[SHOP].book.cart(request[_SESSION])))


async def add_to_cart(request: web.Request) -> web.Response:
    """``POST /api/cart/items`` with ``{"sku": ..., "quantity": n}``."""
    item = await _body(request, CartItem)
    cart = await request.app[SHOP].add_to_cart(request[_SESSION], item.sku, item.quantity)
    return web.json_response(cart_json(cart))


async def checkout(request: web.Request) -> web.Response:
    """``POST /api/checkout``: the cart becomes an order awaiting payment (201)."""

    async def act() -> Answer:
        body = await _body(request, CheckoutBody)
        shop = request.app[SHOP]
        order = await shop.checkout(request[_SESSION], body.email, is_synthetic(request))
        return 201, order.to_json()

    return await _idempotent(request, act)


async def pay(request: web.Request) -> web.Response:
    """``POST /api/orders/{id}/payment`` with a sandbox card number."""

    async def act() -> Answer:
        body = await _body(request, PaymentBody)
        shop = request.app[SHOP]
        order = await shop.pay(request[_SESSION], request.match_info["id"], body.card_number)
        return 200, order.to_json()

    return await _idempotent(request, act)


async def show_order(request: web.Request) -> web.Response:
    """``GET /api/orders/{id}``: the confirmation."""
    return _order(await request.app[SHOP].order(request[_SESSION], request.match_info["id"]))


async def cancel_order(request: web.Request) -> web.Response:
    """``POST /api/orders/{id}/cancel``."""
    return _order(await request.app[SHOP].cancel(request[_SESSION], request.match_info["id"]))


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` (every exporter) or ``GET /metrics/{exporter}`` (one)."""
    exporter = request.match_info.get("exporter")
    if exporter is not None and exporter not in EXPORTERS:
        return error(404, f"exporters: {', '.join(EXPORTERS)}", field="exporter")
    body = request.app[SHOP].metrics.exposition(exporter)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def list_faults(request: web.Request) -> web.Response:
    """``GET /faults``: the faults turned on."""
    return web.json_response({"faults": request.app[SHOP].faults.describe()})


async def set_fault(request: web.Request) -> web.Response:
    """``POST /faults`` with ``{"name": ..., "seconds": ...}`` turns a fault on."""
    try:
        fault = FaultRequest.model_validate_json(await request.read() or b"{}")
    except ValidationError as err:
        first = err.errors()[0]
        return error(400, first["msg"], ".".join(str(p) for p in first["loc"]) or "body")
    request.app[SHOP].set_fault(fault)
    return await list_faults(request)


async def clear_fault(request: web.Request) -> web.Response:
    """``DELETE /faults/{name}`` turns a fault off (a fault already off is no error)."""
    try:
        fault = Fault(request.match_info["name"])
    except ValueError:
        return error(404, f"faults: {', '.join(Fault)}", field="name")
    shop = request.app[SHOP]
    cleared = shop.clear_fault(fault)
    return web.json_response({"cleared": cleared, "faults": shop.faults.describe()})


async def healthz(_request: web.Request) -> web.Response:
    """``GET /healthz``: the process answers."""
    return web.json_response({"status": "ok"})


def create_storefront(shop: Shop) -> web.Application:
    """The shop's application; the mail relay sends while it runs."""
    app = web.Application(middlewares=[storefront_edge])
    app[SHOP] = shop
    app.add_routes(
        [
            web.get("/api/products", products),
            web.get("/api/products/{sku}", product),
            web.get("/api/cart", show_cart),
            web.post("/api/cart/items", add_to_cart),
            web.post("/api/checkout", checkout),
            web.post("/api/orders/{id}/payment", pay),
            web.get("/api/orders/{id}", show_order),
            web.post("/api/orders/{id}/cancel", cancel_order),
            web.get("/metrics", metrics),
            web.get("/metrics/{exporter}", metrics),
            web.get("/faults", list_faults),
            web.post("/faults", set_fault),
            web.delete("/faults/{name}", clear_fault),
            web.get("/healthz", healthz),
        ]
    )
    app.cleanup_ctx.append(_relay)
    return app


async def _relay(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SHOP].relay.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
