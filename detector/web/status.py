"""The public status page and Statuspage v2 JSON: unauthenticated, read-only, served from the
in-memory snapshot (a request never touches the database), with ETag/304 and caching headers."""

from __future__ import annotations

from aiohttp import web

from detector.web.context import SERVICES
from detector.web.responses import error
from detector.web.status_snapshot import DOCUMENTS


async def serve(request: web.Request) -> web.Response:
    """``GET`` any public document; ``304`` when the client already holds these bytes."""
    document = request.app[SERVICES].status_page.documents.get(request.path)
    if document is None:
        return error(503, "the status page is starting, try again in a moment")
    if _holds(request.headers.get("If-None-Match", ""), document.etag):
        return web.Response(status=304, headers=document.headers)
    return web.Response(body=document.body, headers=document.headers)


def _holds(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison: any listed tag, ``W/`` or not, or ``*``."""
    if not if_none_match:
        return False
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in (etag, "*") for tag in tags)


def routes() -> list[web.RouteDef]:
    """Every public document's route."""
    return [web.get(path, serve) for path in DOCUMENTS]
