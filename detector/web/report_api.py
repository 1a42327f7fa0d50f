"""``GET /api/v1/incidents/{id}/report`` (the post-incident report, Markdown or HTML) and
``GET /api/v1/stats`` (incidents, MTTA, MTTR and time to first notice per component and rule)."""

from __future__ import annotations

from aiohttp import web

from detector.domain.durations import parse_duration
from detector.report.gather import incident_report
from detector.report.render import ReportFormat, render
from detector.store import incident_stats
from detector.web.context import SERVICES
from detector.web.responses import error, int_param

FORMATS = {
    "markdown": ReportFormat.MARKDOWN,
    "md": ReportFormat.MARKDOWN,
    "html": ReportFormat.HTML,
}


async def report(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents/{id}/report?format=markdown|html`` (Markdown by default)."""
    incident_id = int_param(request.match_info["id"], "id")
    form = FORMATS.get(request.query.get("format", "markdown"))
    if form is None:
        return error(400, "must be markdown or html", field="format")
    services = request.app[SERVICES]
    async with services.pool.acquire() as connection:
        found = await incident_report(
            connection,
            services.rules.current,
            incident_id,
            services.settings.status_page_base,
            services.clock.now(),
        )
    if found is None:
        return error(404, "no such incident", field="id")
    return web.Response(text=render(found, form), content_type=form.content_type, charset="utf-8")


async def stats(request: web.Request) -> web.Response:
    """``GET /api/v1/stats?since=30d``: ``{"since", "rows": [...]}`` per component and rule."""
    try:
        window = parse_duration(request.query.get("since", "30d"))
    except ValueError as err:
        return error(400, str(err), field="since")
    services = request.app[SERVICES]
    since = services.clock.now() - window
    async with services.pool.acquire() as connection:
        rows = await incident_stats.per_rule(connection, since)
    return web.json_response({"since": since.isoformat(), "rows": rows})


def routes() -> list[web.RouteDef]:
    """The report and statistics routes."""
    return [
        web.get("/api/v1/incidents/{id}/report", report),
        web.get("/api/v1/stats", stats),
    ]
