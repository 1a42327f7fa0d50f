"""Alertmanager's v2 API as the reconciler reads it: the alerts still present and the uptime.

Only what reconciliation needs is parsed; the URL and token never appear in logs or errors.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter


class _ListedAlert(BaseModel):
    """One alert of ``GET /api/v2/alerts``; other fields vary by version and are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    fingerprint: str = Field(min_length=1)
    startsAt: datetime


class _Status(BaseModel):
    """``GET /api/v2/status``: ``uptime`` is when the process started."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uptime: datetime


_LISTED = TypeAdapter(list[_ListedAlert])


def parse_alerts(body: bytes) -> dict[str, datetime]:
    """``fingerprint → startsAt`` from a ``GET /api/v2/alerts`` body; raises ValueError if bad.

    The state (``active``, ``suppressed``, ``unprocessed``) is deliberately not read: a silenced
    or inhibited alert is still firing, only its notifications are muted.
    """
    return {a.fingerprint.lower(): a.startsAt for a in _LISTED.validate_json(body)}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What Alertmanager holds now: ``fingerprint → startsAt``, and how long it has run."""

    listed: Mapping[str, datetime]
    started_at: datetime
    reported_at: datetime | None


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
            listed = parse_alerts(alerts_body)
        except ValueError:
            raise FetchError("bad_response") from None
        return Snapshot(listed, status.uptime, date)

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
