"""Subscriptions: the public double opt-in and one-click unsubscribe under
``/api/v2/subscribers`` (rate-limited, never telling whether an address is subscribed), and
under ``/api/v1/subscribers`` (bearer token) webhook subscriptions and an address's export and
erasure."""

from __future__ import annotations

import html
import re

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.domain.fieldpath import field_path
from detector.engine import subscriptions
from detector.engine.subscriber_delivery import SUBSCRIBE_PATH
from detector.web.context import SERVICES
from detector.web.rate_limit import RateLimiter
from detector.web.responses import error

LIMITER = web.AppKey("subscribe_limiter", RateLimiter)
_EMAIL = re.compile(r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
ACCEPTED = "If the address can receive mail, a confirmation link is on its way."


class EmailSubscription(BaseModel):
    """A customer's subscription request."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254, pattern=_EMAIL.pattern)
    components: list[str] = Field(default_factory=list, max_length=100)
    """Component names; none means every component."""


class WebhookSubscription(BaseModel):
    """An operator's webhook subscription."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, pattern=r"^https?://")
    components: list[str] = Field(default_factory=list, max_length=100)


def _limited(request: web.Request) -> web.Response | None:
    if request.app[LIMITER].allow(request.remote or "unknown"):
        return None
    return error(429, "too many requests; try again in a few minutes", field="client")


def _unknown_components(request: web.Request, names: list[str]) -> web.Response | None:
    known = request.app[SERVICES].rules.current.components
    unknown = [name for name in names if name not in known]
    if unknown:
        return error(400, f"unknown component(s): {', '.join(unknown)}", field="components")
    return None


async def subscribe(request: web.Request) -> web.Response:
    """``POST /api/v2/subscribers`` ``{"email": ..., "components": [...]}`` (or the same as
    form fields): always 202, as JSON or, for a form, a page."""
    denied = _limited(request)
    if denied is not None:
        return denied
    form = request.content_type == "application/x-www-form-urlencoded"
    try:
        body = await _subscription(request, form)
    except ValidationError as err:
        first = err.errors()[0]
        return error(400, first["msg"], field=field_path(first["loc"]) or "body")
    unknown = _unknown_components(request, body.components)
    if unknown is not None:
        return unknown
    services = request.app[SERVICES]
    await subscriptions.subscribe_email(
        services.pool,
        body.email.strip().lower(),
        body.components,
        services.settings.status_page_name,
        services.clock.now(),
    )
    services.engine.wake()
    if form:
        return _page("Check your inbox", ACCEPTED, status=202)
    return web.json_response({"result": ACCEPTED}, status=202)


async def _subscription(request: web.Request, form: bool) -> EmailSubscription:
    """The request as JSON, or as the status page's form (works without JavaScript)."""
    if not form:
        return EmailSubscription.model_validate_json(await request.read())
    fields = await request.post()
    return EmailSubscription.model_validate(
        {"email": fields.get("email", ""), "components": fields.getall("components", [])}
    )


def _page(title: str, text: str, form: str = "", status: int = 200) -> web.Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{form}</main></body></html>"
    )
    return web.Response(text=body, content_type="text/html", status=status)


async def confirm(request: web.Request) -> web.Response:
    """``GET /api/v2/subscribers/confirm?token=...``: the double opt-in link."""
    services = request.app[SERVICES]
    if await subscriptions.confirm(
        services.pool, request.query.get("token", ""), services.clock.now()
    ):
        return _page("Subscribed", "You will receive our status updates by email.")
    return _page("Link not valid", "This confirmation link is not valid (any more).")


async def unsubscribe_page(request: web.Request) -> web.Response:
    """``GET .../unsubscribe?token=...``: a button, since mail scanners follow links."""
    token = html.escape(request.query.get("token", ""), quote=True)
    form = (
        f'<form method="post" action="{SUBSCRIBE_PATH}/unsubscribe?token={token}">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", "Stop receiving our status updates at this address?", form)


async def unsubscribe(request: web.Request) -> web.Response:
    """``POST .../unsubscribe?token=...``: the button, and RFC 8058 one-click (a mail client's
    ``List-Unsubscribe=One-Click`` POST). The answer is the same for any token."""
    denied = _limited(request)
    if denied is not None:
        return denied
    await subscriptions.unsubscribe(request.app[SERVICES].pool, request.query.get("token", ""))
    return _page("Unsubscribed", "You will not receive our status updates any more.")


async def add_webhook(request: web.Request) -> web.Response:
    """``POST /api/v1/subscribers/webhooks``: returns the secret that signs its deliveries."""
    try:
        body = WebhookSubscription.model_validate_json(await request.read())
    except ValidationError as err:
        first = err.errors()[0]
        return error(400, first["msg"], field=field_path(first["loc"]) or "body")
    unknown = _unknown_components(request, body.components)
    if unknown is not None:
        return unknown
    services = request.app[SERVICES]
    found = await subscriptions.add_webhook(
        services.pool, body.url, body.components, services.clock.now()
    )
    return web.json_response(
        {"id": found.id, "url": found.address, "secret": found.secret, "token": found.token},
        status=201,
    )


def _address(request: web.Request) -> str | web.Response:
    """The ``address`` query parameter, an email address lower-cased as subscribing stores it."""
    address = request.query.get("address", "").strip()
    if not address:
        return error(400, "the address (email or webhook URL) is required", field="address")
    return address.lower() if "@" in address and "://" not in address else address


async def export(request: web.Request) -> web.Response:
    """``GET /api/v1/subscribers?address=...``: everything kept about an address."""
    address = _address(request)
    if isinstance(address, web.Response):
        return address
    found = await subscriptions.export(request.app[SERVICES].pool, address)
    return web.json_response({"address": address, "subscriptions": found})


async def erase(request: web.Request) -> web.Response:
    """``DELETE /api/v1/subscribers?address=...``: forget an address and its deliveries."""
    address = _address(request)
    if isinstance(address, web.Response):
        return address
    erased = await subscriptions.erase(request.app[SERVICES].pool, address)
    return web.json_response({"address": address, "erased": erased})


def routes() -> list[web.RouteDef]:
    """The subscription routes."""
    return [
        web.post(SUBSCRIBE_PATH, subscribe),
        web.get(f"{SUBSCRIBE_PATH}/confirm", confirm),
        web.get(f"{SUBSCRIBE_PATH}/unsubscribe", unsubscribe_page),
        web.post(f"{SUBSCRIBE_PATH}/unsubscribe", unsubscribe),
        web.post("/api/v1/subscribers/webhooks", add_webhook),
        web.get("/api/v1/subscribers", export),
        web.delete("/api/v1/subscribers", erase),
    ]
