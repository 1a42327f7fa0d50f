"""Signed acknowledge links: ``GET`` shows a confirmation page, only ``POST`` acknowledges.

Chat apps and mail scanners prefetch links, so a GET must never change anything.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from html import escape

from aiohttp import web

from detector.domain.model import IncidentState
from detector.domain.reasons import DecisionReason
from detector.engine import actions
from detector.ruleset.channel_specs import Target
from detector.ruleset.rules import RuleSet
from detector.store import queries
from detector.web.ack_links import AckTarget, LinkInvalid, LinkProblem, read_token
from detector.web.context import SERVICES
from responders.channels.recipients import parse_contact

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"
    "button{font-size:1.2rem;padding:.8rem 1.6rem}.muted{color:#555}"
)
_PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta name="robots" content="noindex"><title>{title} · Stormwatch</title>\n'
    "<style>{style}</style></head>\n"
    "<body><h1>{title}</h1>{body}</body></html>"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
PROTECTION = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
"""Every answer under ``/ack/``: the token in the URL must not leak through a Referer, a cache
or a frame (a page framing the button could trick someone into acknowledging)."""

_PROBLEMS = {
    LinkProblem.EXPIRED: (
        "This acknowledge link has expired. Use the API or the CLI: stormwatch ack ID."
    ),
    LinkProblem.BAD_SIGNATURE: "This acknowledge link is not valid.",
    LinkProblem.MALFORMED: "This acknowledge link is not valid.",
}
_ALREADY = {
    DecisionReason.ALREADY_ACKNOWLEDGED: IncidentState.ACKNOWLEDGED,
    DecisionReason.ALREADY_RESOLVED: IncidentState.RESOLVED,
}
"""The state an ack that changed nothing found the incident in."""


async def protect(request: web.Request, response: web.StreamResponse) -> None:
    """Add :data:`PROTECTION` to every response under ``/ack/``, error pages included (an
    ``on_response_prepare`` hook, so nothing a handler or the router answers escapes it)."""
    if request.path.startswith("/ack/"):
        response.headers.update(PROTECTION)


def ack_actor(
    recipient: str | None, typed: str, endpoints: Mapping[str, Target]
) -> tuple[str, str]:
    """Who acknowledges through a link, and how (``by``, ``via``).

    A link sent to a person's contact method acknowledges as that person, whatever is typed; one
    sent to a shared channel as the name typed into the form, else the channel's name. ``via``
    is ``link:<type of the method or channel>``, plain ``link`` when the rules no longer have
    it or the link names no recipient (then ``by`` is the typed name, else ``ack link``).
    """
    if not recipient:
        return typed or "ack link", "link"
    method = endpoints.get(recipient)
    via = f"link:{method.type}" if method is not None else "link"
    contact = parse_contact(recipient)
    if contact is not None:
        return contact.person, via
    return typed or recipient, via


def _html(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=_PAGE.format(title=escape(title), body=body, style=_STYLE),
        status=status,
        content_type="text/html",
    )


def _form(recipient: str | None, rules: RuleSet) -> str:
    """The acknowledge button; a name field only where the link does not name a person."""
    contact = parse_contact(recipient or "")
    if contact is not None:
        person = rules.people.get(contact.person)
        name = person.name if person else contact.person
        who = f"<p>You acknowledge as <strong>{escape(name)}</strong>.</p>"
    else:
        who = '<label>Your name <input name="by" autocomplete="name"></label>'
    return f'<form method="post">{who}<p><button type=submit>Acknowledge</button></p></form>'


def _target(request: web.Request) -> AckTarget | web.Response:
    services = request.app[SERVICES]
    try:
        return read_token(services.signing_key, request.match_info["token"], services.clock.now())
    except LinkInvalid as err:
        status = 410 if err.reason is LinkProblem.EXPIRED else 400
        return _html("Link not usable", f"<p>{escape(_PROBLEMS[err.reason])}</p>", status)


def _superseded(incident_id: int) -> web.Response:
    return _html(
        "Link from an earlier episode",
        f"<p>Incident #{incident_id} was resolved and has fired again since this page was sent."
        " Use the link in the newest page for it, or the API or the CLI:"
        f" stormwatch ack {incident_id}.</p>",
        410,
    )


async def confirm_page(request: web.Request) -> web.Response:
    """Show what would be acknowledged, with a button that POSTs."""
    target = _target(request)
    if isinstance(target, web.Response):
        return target
    incident_id = target.incident_id
    async with request.app[SERVICES].pool.acquire() as connection:
        detail = await queries.incident_detail(connection, incident_id)
        epoch = await queries.incident_epoch(connection, incident_id)
    if detail is None:
        return _html("Incident not found", "<p>No such incident.</p>", 404)
    current = target.episode is None or target.episode == epoch
    if detail["state"] == "triggered" and not current:
        return _superseded(incident_id)
    body = (
        f"<p><strong>#{incident_id}</strong> · {escape(detail['severity'])} · "
        f"state: <strong>{escape(detail['state'])}</strong></p>"
        f"<p class=muted>{escape(detail['summary'])}</p>"
    )
    if detail["state"] == "triggered":
        body += _form(target.recipient, request.app[SERVICES].rules.current)
    return _html(detail["title"], body)


async def acknowledge(request: web.Request) -> web.Response:
    """Acknowledge the incident the signed link names, in the episode it was sent for."""
    target = _target(request)
    if isinstance(target, web.Response):
        return target
    incident_id = target.incident_id
    services = request.app[SERVICES]
    form = await request.post()
    rules = services.rules.current
    typed = str(form.get("by") or "").strip()[:200]
    by, via = ack_actor(target.recipient, typed, rules.every_channel())
    try:
        decision = await actions.acknowledge(
            services.pool,
            incident_id,
            by,
            via,
            rules,
            services.clock.now(),
            target.episode,
        )
    except actions.IncidentNotFound:
        return _html("Incident not found", "<p>No such incident.</p>", 404)
    if decision.reason is DecisionReason.LINK_SUPERSEDED:
        return _superseded(incident_id)
    services.metrics.acknowledged(decision)
    if decision.incident is not None:
        services.engine.wake()
        return _html(
            "Acknowledged", f"<p>Incident #{incident_id} is acknowledged. Escalation stopped.</p>"
        )
    state = _ALREADY[decision.reason]
    return _html("Nothing to do", f"<p>Incident #{incident_id} is already {escape(state)}.</p>")


def routes() -> list[web.RouteDef]:
    """The ack link routes."""
    return [web.get("/ack/{token}", confirm_page), web.post("/ack/{token}", acknowledge)]
