"""A tiny shop on 127.0.0.1 for journey tests: product, cart (with a session cookie), payment,
order and cancel, each able to misbehave on demand, and every request it saw kept."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from typing import Any

from aiohttp import web

JOURNEY = """\
name: checkout
interval: 1m
timeout: 10s
step_timeout: 500ms
retries: 1
retry_delay: 10ms
vars: {{base: "{base}"}}
steps:
  - name: product
    url: "{{{{ vars.base }}}}/products/SYN-1"
    assert:
      - status: 200
      - json: $.available
        equals: true
    extract:
      price: {{json: $.price}}
  - name: cart
    method: POST
    url: "{{{{ vars.base }}}}/cart"
    json: {{sku: SYN-1, price: "{{{{ steps.product.price }}}}"}}
    assert:
      - status: [200, 201]
    extract:
      cart_id: {{json: $.id}}
      session: {{cookie: session}}
  - name: pay
    method: POST
    url: "{{{{ vars.base }}}}/cart/{{{{ steps.cart.cart_id }}}}/pay"
    assert:
      - status: 200
      - json: $.status
        equals: authorized
    extract:
      order_id: {{json: $.order_id}}
  - name: confirmation
    url: "{{{{ vars.base }}}}/orders/{{{{ steps.pay.order_id }}}}"
    assert:
      - body: true
        contains: confirmed
  - name: cancel_order
    always_run: true
    method: POST
    url: "{{{{ vars.base }}}}/orders/{{{{ steps.pay.order_id }}}}/cancel"
  - name: empty_cart
    always_run: true
    method: DELETE
    url: "{{{{ vars.base }}}}/cart/{{{{ steps.cart.cart_id }}}}"
"""


class ProbeShop:
    """The shop; set ``faults`` (``{"pay": 503}``, ``{"pay_delay": 3.0}``, ...) to break it."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.faults: dict[str, Any] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.cancelled: list[str] = []
        self._ssl = ssl_context
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._browsing = 0
        self.most_browsing = 0
        """The most product requests in flight at once."""
        self.url = ""

    async def start(self) -> ProbeShop:
        app = web.Application()
        app.add_routes(
            [
                web.get("/products/{sku}", self._product),
                web.post("/cart", self._cart),
                web.post("/cart/{cart}/pay", self._pay),
                web.delete("/cart/{cart}", self._empty),
                web.get("/orders/{order}", self._order),
                web.post("/orders/{order}/cancel", self._cancel),
            ]
        )
        app.middlewares.append(self._record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if self._ssl else 'http'}://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.headers)))
        return await handler(request)  # type: ignore[no-any-return]

    async def _product(self, request: web.Request) -> web.Response:
        self._browsing += 1
        self.most_browsing = max(self.most_browsing, self._browsing)
        try:
            await asyncio.sleep(self.faults.get("product_delay", 0))
        finally:
            self._browsing -= 1
        return web.json_response(
            {"sku": request.match_info["sku"], "price": 12.5, "available": True}
        )

    async def _cart(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.faults.get("cart_without_id"):
            return web.json_response({"items": [body]}, status=201)
        response = web.json_response({"id": f"cart-{next(self._ids)}", "items": [body]}, status=201)
        response.set_cookie("session", "sess-0123456789")
        return response

    async def _pay(self, request: web.Request) -> web.Response:
        if request.cookies.get("session") != "sess-0123456789":
            return web.json_response({"error": "no session"}, status=401)
        await asyncio.sleep(self.faults.get("pay_delay", 0))
        if "pay" in self.faults:
            self.faults["pay_attempts"] = self.faults.get("pay_attempts", 0) + 1
            return web.json_response(
                {
                    "error": "gateway down",
                    "client_secret": "pi_3Nx_secret_abc123",
                    "token": "tok_visa_9876543",
                },
                status=self.faults["pay"],
            )
        status = self.faults.get("pay_status", "authorized")
        return web.json_response({"status": status, "order_id": f"order-{next(self._ids)}"})

    async def _order(self, request: web.Request) -> web.Response:
        return web.Response(text=f"<p>Order {request.match_info['order']} confirmed</p>")

    async def _cancel(self, request: web.Request) -> web.Response:
        self.cancelled.append(request.match_info["order"])
        return web.json_response({"status": "cancelled"})

    async def _empty(self, request: web.Request) -> web.Response:
        self.cancelled.append(request.match_info["cart"])
        return web.Response(status=204)
