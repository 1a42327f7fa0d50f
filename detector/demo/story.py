"""The story the demo tells, step by step, against the running world: each step waits
(bounded) for what a person would see next, tells the narrator, and keeps the moments that
make the measured times."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import aiohttp

from detector.demo.shop_prometheus import HOW_TO_ADD
from detector.demo.world import World
from detector.demo_shop.faults import Fault, FaultRequest

T = TypeVar("T")
POLL_S = 0.25
CONFIRM_LINK = re.compile(r"https?://\S+/confirm\?token=\S+")
SUBSCRIBER = "customer@demo-shop.invalid"


class Narrator(Protocol):
    """Who tells the story: a step begins, a step ends with what happened, a remark."""

    def begin(self, step: str) -> None: ...

    def done(self, step: str, detail: str = "") -> None: ...

    def say(self, text: str) -> None: ...


class StoryStalled(Exception):
    """A step did not happen in time; the message says which."""


@dataclass
class Moments:
    """When each part of the story happened (UTC)."""

    fault_at: datetime | None = None
    opened_at: datetime | None = None
    paged_at: datetime | None = None
    first_notice_at: datetime | None = None
    acknowledged_at: datetime | None = None
    cleared_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution_notice_at: datetime | None = None
    incident_id: int | None = None
    status_page_url: str = ""
    impact: str = ""
    report_markdown: str = ""
    report_html: str = ""
    status_page_html: str = ""
    mails: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def measured(self) -> dict[str, float | None]:
        """The headline times in seconds: detect (fault → incident), page and first notice
        (incident → page, → notice), acknowledge, resolve (fault cleared → resolved)."""
        return {
            "detect": _seconds(self.fault_at, self.opened_at),
            "page": _seconds(self.opened_at, self.paged_at),
            "first_notice": _seconds(self.opened_at, self.first_notice_at),
            "acknowledge": _seconds(self.opened_at, self.acknowledged_at),
            "resolve": _seconds(self.cleared_at, self.resolved_at),
            "incident_open": _seconds(self.opened_at, self.resolved_at),
        }


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 1)


async def until(what: str, seconds: float, probe: Callable[[], Awaitable[T | None]]) -> T:
    """Poll ``probe`` until it returns something, at most ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await probe()
        if found is not None:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise StoryStalled(f"{what}: nothing after {seconds:.0f}s")
        await asyncio.sleep(POLL_S)


class Story:
    """Tell one fault's story in ``world``; ``run`` returns the moments."""

    def __init__(self, world: World, fault: Fault, narrator: Narrator) -> None:
        self._world = world
        self._fault = fault
        self._say = narrator
        self._moments = Moments()

    async def run(self) -> Moments:
        """Every step in order."""
        async with aiohttp.ClientSession() as api:
            self._api = api
            await self._warm_up()
            await self._break_the_shop()
            await self._incident_and_page()
            await self._first_notice()
            await self._impact()
            await self._acknowledge()
            await self._recover()
            await self._report()
        self._moments.mails = len(self._world.mail.mails)
        return self._moments

    def _url(self, path: str) -> str:
        return self._world.service_url + path

    async def _json(self, path: str) -> Any:
        async with self._api.get(self._url(path)) as response:
            response.raise_for_status()
            return await response.json()

    async def _incident(self) -> dict[str, Any]:
        detail: dict[str, Any] = await self._json(f"/api/v1/incidents/{self._moments.incident_id}")
        return detail

    async def _timeline_at(self, kind: str) -> datetime | None:
        events = (await self._incident())["timeline"]
        return next((datetime.fromisoformat(e["at"]) for e in events if e["kind"] == kind), None)

    async def _warm_up(self) -> None:
        step = "The shop is up: shoppers buying, the checkout journey passing"
        self._say.begin(step)
        await until("service ready", 60, self._ready)
        await self._subscribe()

        async def passing() -> bool | None:
            rows = (await self._json("/api/v1/probes"))["journeys"]
            return True if rows and rows[0]["state"] == "passing" else None

        await until("the journey's first passing run", 60, passing)
        if self._world.prometheus is not None:
            await until("Prometheus scraping sales", 60, self._sales_recorded)
            await asyncio.sleep(6)  # a baseline needs a few samples before the incident
        self._say.say(f"shop: {self._world.shop_url}   Stormwatch: {self._world.service_url}")
        self._say.done(step)

    async def _ready(self) -> bool | None:
        try:
            async with self._api.get(self._url("/readyz")) as response:
                return True if response.status == 200 else None
        except aiohttp.ClientError:
            return None

    async def _subscribe(self) -> None:
        """A customer subscribes to the status page and confirms from the mail, as one would."""
        body = {"email": SUBSCRIBER}
        async with self._api.post(self._url("/api/v2/subscribers"), json=body) as response:
            response.raise_for_status()

        async def link() -> str | None:
            found = (CONFIRM_LINK.search(text) for text in self._world.mail.texts())
            return next((m.group(0) for m in found if m), None)

        confirm = await until("the subscription mail", 30, link)
        async with self._api.get(confirm) as response:
            response.raise_for_status()
        self._say.say(f"{SUBSCRIBER} subscribed to the status page (confirmed from the mail)")

    async def _sales_recorded(self) -> bool | None:
        assert self._world.prometheus is not None
        query = {"query": "sum(rate(shop_orders_total[10s]))"}
        url = f"{self._world.prometheus.url}/api/v1/query"
        try:
            async with self._api.get(url, params=query) as response:
                result = (await response.json())["data"]["result"]
        except (aiohttp.ClientError, KeyError, ValueError):
            return None
        return True if result and float(result[0]["value"][1]) > 0 else None

    def _status_page(self) -> str:
        return f"{self._world.service_url}/status"

    async def _break_the_shop(self) -> None:
        step = f"Fault injected: {self._fault.value}"
        self._say.begin(step)
        self._moments.fault_at = datetime.now(UTC)
        self._world.shop.set_fault(FaultRequest(name=self._fault))
        self._say.done(step)
        step = "The checkout journey fails"
        self._say.begin(step)

        async def failing() -> dict[str, Any] | None:
            rows = (await self._json("/api/v1/probes"))["journeys"]
            return rows[0] if rows and rows[0]["state"] in ("failing", "firing") else None

        row = await until("the journey failing", 60, failing)
        failure = row.get("last_failure") or {}
        steps: list[dict[str, Any]] = failure.get("steps", [])
        failed = next((s for s in steps if s["status"] == "failed"), {})
        self._say.done(step, f"step {failed.get('name', '?')}: {failed.get('reason', '?')}")

    async def _incident_and_page(self) -> None:
        step = "An incident opens"
        self._say.begin(step)

        async def opened() -> dict[str, Any] | None:
            rows = (await self._json("/api/v1/incidents?state=open"))["incidents"]
            return rows[0] if rows else None

        incident = await until("the incident opening", 60, opened)
        self._moments.incident_id = incident["id"]
        self._moments.opened_at = datetime.fromisoformat(incident["opened_at"])
        self._say.done(step, f"#{incident['id']} {incident['title']}")
        step = "The on-call person is paged"
        self._say.begin(step)
        page = await until("the page", 30, self._triggered_page)
        self._moments.paged_at = await until(
            "the page on the timeline", 10, lambda: self._timeline_at("page.delivered")
        )
        link = page.get("links", {}).get("acknowledge", "")
        self._moments.extra["ack_link"] = link
        incident = page.get("incident", {})
        self._say.done(step, f"{incident.get('severity', '')} page to on-call-pager")
        self._say.say(f"page: [{incident.get('severity')}] {incident.get('title')}")
        self._say.say(f"ack link: {link}")

    async def _triggered_page(self) -> dict[str, Any] | None:
        return self._world.pages.find("triggered")

    async def _first_notice(self) -> None:
        step = "Customers are told on the status page"
        self._say.begin(step)
        self._moments.first_notice_at = await until(
            "the first notice", 30, lambda: self._timeline_at("notice.published")
        )
        async with self._api.get(self._url("/status")) as response:
            self._moments.status_page_html = await response.text()
        self._moments.status_page_url = self._status_page()
        self._say.say(f"status page (open it now): {self._status_page()}")
        self._say.done(step, "investigating")

    async def _impact(self) -> None:
        step = "Orders and revenue at risk"
        self._say.begin(step)
        if self._world.prometheus is None:
            self._moments.impact = "not measured: no Prometheus on this machine"
            self._say.say(f"no impact estimate: no Prometheus here; {HOW_TO_ADD}")
            self._say.done(step, "skipped")
            return

        async def at_risk() -> str | None:
            impact = (await self._incident())["impact"]
            counted = impact["status"] == "estimated" and (impact["orders_at_risk"] or 0) >= 1
            return impact["summary"] if counted else None

        try:
            self._moments.impact = await until("orders at risk", 45, at_risk)
        except StoryStalled:
            self._moments.impact = (await self._incident())["impact"]["summary"]
        self._say.say(f"impact: {self._moments.impact}")
        self._say.done(step)

    async def _acknowledge(self) -> None:
        step = "The on-call person acknowledges through the link"
        self._say.begin(step)
        link = self._moments.extra["ack_link"]
        async with self._api.post(link, data={"by": "demo-oncall"}) as response:
            response.raise_for_status()

        async def acknowledged() -> datetime | None:
            incident = await self._incident()
            return (
                datetime.fromisoformat(incident["acknowledged_at"])
                if incident["acknowledged_at"]
                else None
            )

        self._moments.acknowledged_at = await until("the acknowledgement", 20, acknowledged)
        self._say.done(step, "escalation stopped")

    async def _recover(self) -> None:
        step = "The fault is fixed"
        self._say.begin(step)
        self._moments.cleared_at = datetime.now(UTC)
        self._world.shop.clear_fault(self._fault)
        self._say.done(step)
        step = "The journey passes again and the incident resolves"
        self._say.begin(step)

        async def resolved() -> datetime | None:
            incident = await self._incident()
            return (
                datetime.fromisoformat(incident["resolved_at"]) if incident["resolved_at"] else None
            )

        self._moments.resolved_at = await until("the resolution", 60, resolved)
        self._say.done(step)
        step = "Customers are told it is fixed"
        self._say.begin(step)
        self._moments.resolution_notice_at = await until(
            "the resolution notice", 60, lambda: self._timeline_at("notice.resolved")
        )
        async with self._api.get(self._url("/status")) as response:
            self._moments.status_page_html = await response.text()
        self._say.done(step, "resolved on the status page after the quiet period")

    async def _report(self) -> None:
        step = "The post-incident report"
        self._say.begin(step)
        path = f"/api/v1/incidents/{self._moments.incident_id}/report"
        async with self._api.get(self._url(path)) as response:
            self._moments.report_markdown = await response.text()
        async with self._api.get(self._url(path), params={"format": "html"}) as response:
            self._moments.report_html = await response.text()
        self._say.done(step)
