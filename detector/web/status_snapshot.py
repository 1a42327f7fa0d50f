"""The public status documents, held in memory and rebuilt on change, so a stampede of
customers costs the database nothing.

Every public write notifies ``STATUSPAGE_CHANNEL`` at commit; each replica listens and rebuilds
within moments, reading the store once for all documents. A timer rebuilds too, so maintenance
starts and ends on time and a lost notification only delays the page. Each document is kept as
bytes with its ETag and headers, ready to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

import orjson
import structlog

from detector.ruleset.rules import RuleSet
from detector.service.clock import Clock
from detector.store import component_status, public_incidents
from detector.store.connection import UNAVAILABLE, Pool
from detector.web.status_state import StoredPage, page_state
from responders.statuspage import documents, feeds, html
from responders.statuspage.html import HISTORY_DAYS
from responders.statuspage.model import MaintenanceStatus, PageInfo, PageState

log = structlog.get_logger(__name__)
JSON = "application/json"
CACHE_CONTROL = "public, max-age=10, stale-while-revalidate=30"
"""Short enough that customers see a change within seconds, long enough that a CDN or browser
in front absorbs most of a stampede."""


def _json(build: Callable[[PageState], documents.Document]) -> Callable[[PageState], bytes]:
    return lambda state: orjson.dumps(build(state))


DOCUMENTS: Mapping[str, tuple[Callable[[PageState], bytes], str]] = {
    "/status": (lambda state: html.render(state).encode(), "text/html; charset=utf-8"),
    "/api/v2/summary.json": (_json(documents.summary), JSON),
    "/api/v2/status.json": (_json(documents.status), JSON),
    "/api/v2/components.json": (_json(documents.components), JSON),
    "/api/v2/incidents.json": (_json(documents.incidents), JSON),
    "/api/v2/incidents/unresolved.json": (_json(documents.unresolved), JSON),
    "/api/v2/scheduled-maintenances.json": (_json(documents.maintenances), JSON),
    "/api/v2/scheduled-maintenances/upcoming.json": (
        _json(lambda state: documents.maintenances(state, MaintenanceStatus.SCHEDULED)),
        JSON,
    ),
    "/api/v2/scheduled-maintenances/active.json": (
        _json(lambda state: documents.maintenances(state, MaintenanceStatus.IN_PROGRESS)),
        JSON,
    ),
    "/api/v2/banner.json": (_json(documents.banner), JSON),
    "/history.atom": (feeds.atom, "application/atom+xml; charset=utf-8"),
    "/history.rss": (feeds.rss, "application/rss+xml; charset=utf-8"),
}
"""Every public document, by path: how to build it and its content type."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """One document, ready to send: its bytes, its ETag, and the headers of a 200."""

    body: bytes
    etag: str
    headers: Mapping[str, str]


def rendered(body: bytes, content_type: str) -> Rendered:
    """Wrap ``body`` with a strong ETag (a hash of the bytes, equal on every replica)."""
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {
        "Content-Type": content_type,
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    return Rendered(body, etag, MappingProxyType(headers))


class StatusSnapshot:
    """The documents as last built; ``run`` keeps them current."""

    def __init__(
        self,
        pool: Pool,
        rules: Callable[[], RuleSet],
        page: PageInfo,
        clock: Clock,
        refresh: timedelta,
    ) -> None:
        self._pool = pool
        self._rules = rules
        self._page = page
        self._clock = clock
        self._refresh = refresh.total_seconds()
        self._changed = asyncio.Event()
        self._stopping = False
        self.documents: Mapping[str, Rendered] = MappingProxyType({})

    def wake(self) -> None:
        """Something public changed: rebuild soon (many wakes make one rebuild)."""
        self._changed.set()

    def stop(self) -> None:
        """Let ``run`` return after its current rebuild."""
        self._stopping = True
        self._changed.set()

    async def rebuild(self) -> PageState:
        """Read the store once and render every document from it."""
        state = await self.read()
        self.documents = MappingProxyType(
            {path: rendered(build(state), kind) for path, (build, kind) in DOCUMENTS.items()}
        )
        return state

    async def read(self) -> PageState:
        """What the page shows now, read fresh from the store (one consistent view)."""
        now = self._clock.now()
        since = now - timedelta(days=HISTORY_DAYS)
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            stored = StoredPage(
                incidents=tuple(await public_incidents.recent(connection, since)),
                levels=await public_incidents.open_levels(connection),
                overrides=await component_status.overrides(connection),
            )
        return page_state(self._rules(), self._page, stored, now)

    async def run(self) -> None:
        """Rebuild on every change and at least every ``refresh``, until stopped; a database
        outage keeps the last documents (stale beats blank while customers look)."""
        while not self._stopping:
            self._changed.clear()
            try:
                await self.rebuild()
            except UNAVAILABLE as err:
                log.warning("statuspage.rebuild_failed", error=type(err).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self._refresh)
