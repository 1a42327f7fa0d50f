"""Alertmanager's v2 API as the reconciler reads it: the alerts still present and the uptime.

Only what reconciliation needs is parsed; the URL and token never appear in logs or errors. An HA
cluster is read peer by peer (Alertmanager peers share silences and notifications, not alerts:
each holds what Prometheus sent it), and an alert any reachable peer lists counts as present.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter

log = structlog.get_logger(__name__)


class _AlertStatus(BaseModel):
    """``status`` of a listed alert: ``active``, ``suppressed`` (silenced or inhibited) or
    ``unprocessed``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    state: str = ""


class _ListedAlert(BaseModel):
    """One alert of ``GET /api/v2/alerts``; other fields vary by version and are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    fingerprint: str = Field(min_length=1)
    startsAt: datetime
    status: _AlertStatus = _AlertStatus()


class _Status(BaseModel):
    """``GET /api/v2/status``: ``uptime`` is when the process started."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uptime: datetime


_LISTED = TypeAdapter(list[_ListedAlert])


def parse_alerts(body: bytes) -> tuple[dict[str, datetime], frozenset[str]]:
    """``fingerprint → startsAt`` of every alert in a ``GET /api/v2/alerts`` body, and the
    fingerprints of the muted ones (silenced or inhibited); raises ValueError if bad.

    A muted alert is still firing (it is listed like any other); only its notifications are off.
    """
    alerts = _LISTED.validate_json(body)
    listed = {a.fingerprint.lower(): a.startsAt for a in alerts}
    return listed, frozenset(a.fingerprint.lower() for a in alerts if a.status.state == _MUTED)


_MUTED = "suppressed"


def api_precision(moment: datetime) -> datetime:
    """Millisecond precision: the API truncates startsAt to ms while webhooks carry it in full."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What Alertmanager holds now: ``fingerprint → startsAt``, which of those are muted, and
    how long it has run."""

    listed: Mapping[str, datetime]
    started_at: datetime
    reported_at: datetime | None
    muted: frozenset[str] = frozenset()


class FetchError(Exception):
    """Alertmanager could not be read; ``reason`` is a low-cardinality word for logs."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class AlertSource(Protocol):
    """Where the reconciler reads the alerts that are still present."""

    async def snapshot(self) -> Snapshot:
        """The current alert list, or raise FetchError."""
        ...


def merge(snapshots: Sequence[Snapshot]) -> Snapshot:
    """One view of several peers: every alert any of them lists (the earliest startsAt, as
    Alertmanager keeps when it merges re-posts), muted where any of them mutes it, with the
    uptime of the longest-running one.

    A peer that restarted lately lists too little, never too much, so the union stays complete
    as long as one peer is settled; judging settledness by the oldest peer is then safe.
    """
    listed: dict[str, datetime] = {}
    for snapshot in snapshots:
        for fingerprint, starts_at in snapshot.listed.items():
            if fingerprint not in listed or starts_at < listed[fingerprint]:
                listed[fingerprint] = starts_at
    oldest = min(snapshots, key=lambda snapshot: snapshot.started_at)
    muted = frozenset().union(*(snapshot.muted for snapshot in snapshots))
    return Snapshot(listed, oldest.started_at, oldest.reported_at, muted)


class AlertmanagerPeers:
    """Reads every peer at once and merges what the reachable ones hold; fails only when none
    answers, so one peer down for maintenance does not stop reconciliation."""

    def __init__(self, peers: Sequence[AlertSource]) -> None:
        self._peers = tuple(peers)

    async def snapshot(self) -> Snapshot:
        """The merged list of the peers that answered, or the first FetchError if none did."""
        results = await asyncio.gather(
            *(peer.snapshot() for peer in self._peers), return_exceptions=True
        )
        answered: list[Snapshot] = []
        failed: list[tuple[int, FetchError]] = []
        for index, result in enumerate(results):
            if isinstance(result, FetchError):
                failed.append((index, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                answered.append(result)
        if not answered:
            raise failed[0][1]
        for index, error in failed:
            log.warning("reconcile.peer_unreadable", peer=index, reason=error.reason)
        return merge(answered)


class AlertmanagerClient:
    """Reads Alertmanager's v2 API; the URL and token never appear in logs or errors."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        token: SecretStr | None = None,
        timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    async def snapshot(self) -> Snapshot:
        """Status first, then the list: default filters include silenced and inhibited alerts."""
        status_body, date = await self._get("/api/v2/status")
        alerts_body, _ = await self._get("/api/v2/alerts")
        try:
            status = _Status.model_validate_json(status_body)
            listed, muted = parse_alerts(alerts_body)
        except ValueError:
            raise FetchError("bad_response") from None
        return Snapshot(listed, status.uptime, date, muted)

    async def _get(self, path: str) -> tuple[bytes, datetime | None]:
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        try:
            async with self._session.get(
                self._url + path, headers=headers, timeout=self._timeout
            ) as response:
                if response.status != 200:
                    raise FetchError("http_status", response.status)
                return await response.read(), _http_date(response.headers.get("Date"))
        except TimeoutError:
            raise FetchError("timeout") from None
        except aiohttp.ClientError as err:
            raise FetchError(type(err).__name__) from None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
