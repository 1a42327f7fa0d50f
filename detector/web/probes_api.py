"""``GET /api/v1/probes``: every journey at every location with its standing and last results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from detector.store import probes as store
from detector.web.context import SERVICES


def _standing(row: dict[str, Any]) -> str:
    """firing (the signal stands), failing (below the threshold), passing, or pending."""
    if row["firing_since"] is not None:
        return "firing"
    if row["failures"]:
        return "failing"
    return "passing" if row["last_run_at"] is not None else "pending"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "journey": row["journey"],
        "location": row["location"],
        "state": _standing(row),
        "consecutive_failures": row["failures"],
        "consecutive_successes": row["successes"],
        "failing_since": _iso(row["failing_since"]),
        "firing_since": _iso(row["firing_since"]),
        "last_run_at": _iso(row["last_run_at"]),
        "next_run_at": _iso(row["next_due_at"]),
        "last_result": row["last_result"],
        "last_failure": row["last_failure"],
    }


async def list_probes(request: web.Request) -> web.Response:
    """The journeys' last results, per location that runs them."""
    services = request.app[SERVICES]
    async with services.pool.acquire() as connection:
        rows = await store.latest(connection)
    return web.json_response(
        {
            "location": services.settings.probe_location,
            "journeys": [_entry(row) for row in rows],
        }
    )


def routes() -> list[web.RouteDef]:
    """The probes API routes."""
    return [web.get("/api/v1/probes", list_probes)]
