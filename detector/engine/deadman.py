"""Engine stage: the dead-man's switch. At most once per interval, while the engine's detecting
stages keep cycling, a GET to an external checker's URL (healthchecks.io style, or an
Alertmanager Watchdog receiver) says so; when the pings stop, the checker pages someone about
Stormwatch. The ping runs in the upkeep lane, so a slow checker never holds up detection, and is
withheld while detection has stalled, so a hung engine is noticed.

A failed ping is logged and counted, never raised: a checker that is down must not stop the
engine it watches. The URL usually carries the check's key, so it never appears in a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import aiohttp
import structlog
from pydantic import SecretStr

from detector.engine.stage import CycleContext, Lane
from detector.service.metrics import Metrics

log = structlog.get_logger(__name__)
DEFAULT_EVERY = timedelta(seconds=30)
PING_TIMEOUT = timedelta(seconds=5)


class PingOutcome(StrEnum):
    """How a ping ended (the ``outcome`` label of ``stormwatch_deadman_pings_total``)."""

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeadmanReport:
    """The ping this cycle sent, if one was due."""

    outcome: PingOutcome | None = None

    @property
    def busy(self) -> bool:
        """Never: a ping is not work that makes the next cycle follow at once."""
        return False

    def record(self, metrics: Metrics) -> None:
        """Count the ping by outcome."""
        if self.outcome is not None:
            metrics.deadman_pings.labels(self.outcome).inc()


class DeadmanStage:
    """Pings ``url`` at most once every ``every`` (by the engine's clock)."""

    name = "deadman"
    lane = Lane.UPKEEP

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: SecretStr,
        every: timedelta = DEFAULT_EVERY,
        timeout: timedelta = PING_TIMEOUT,
    ) -> None:
        self._session = session
        self._url = url
        self._every = every
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())
        self._last: datetime | None = None

    async def run(self, context: CycleContext) -> DeadmanReport:
        """Ping when the last ping is ``every`` old (or there was none) and detection runs."""
        if self._last is not None and context.now - self._last < self._every:
            return DeadmanReport()
        if not context.detecting:
            log.warning("deadman.withheld", reason="detecting stages stalled")
            return DeadmanReport()
        self._last = context.now
        return DeadmanReport(await self._ping())

    async def _ping(self) -> PingOutcome:
        try:
            url = self._url.get_secret_value()
            async with self._session.get(url, timeout=self._timeout) as response:
                status = response.status
        except Exception as err:  # whatever fails, the engine goes on
            log.warning("deadman.ping_failed", error=type(err).__name__)
            return PingOutcome.FAILED
        if not 200 <= status < 300:
            log.warning("deadman.ping_failed", status=status)
            return PingOutcome.FAILED
        return PingOutcome.OK
