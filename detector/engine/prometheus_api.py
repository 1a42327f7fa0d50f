"""The shop's Prometheus as impact estimation reads it: one instant query at one moment.

Every way a query can fail (Prometheus unreachable, slow, an error answer, an empty or
non-numeric result) becomes a :class:`Reading` with the reason, never an exception, so an
incident's impact is "unknown, because ..." rather than an error or a guess. The URL never
appears in a reason (it may carry credentials).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Reading:
    """A query's value, or why there is none."""

    value: float | None
    reason: str | None = None


class PrometheusApi:
    """``GET /api/v1/query`` against one Prometheus."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        timeout: timedelta = timedelta(seconds=5),
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/api/v1/query"
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    async def value(self, query: str, at: datetime) -> Reading:
        """``query`` evaluated at ``at``: a scalar, or the sum of a vector's series."""
        params = {"query": query, "time": f"{at.timestamp():.3f}"}
        try:
            async with self._session.get(self._url, params=params, timeout=self._timeout) as got:
                body = await got.json(content_type=None)
        except TimeoutError:
            return Reading(None, "Prometheus did not answer in time")
        except aiohttp.ClientConnectionError:
            return Reading(None, "Prometheus unreachable")
        except (aiohttp.ClientError, ValueError):
            return Reading(None, "Prometheus answered with something other than JSON")
        return reading(body)


def reading(body: Any) -> Reading:
    """The value of a ``/api/v1/query`` answer (a scalar, or a vector summed), or the reason."""
    if not isinstance(body, dict):
        return Reading(None, "Prometheus answered with something other than a query result")
    if body.get("status") != "success":
        return Reading(None, f"query failed: {str(body.get('error', 'unknown error'))[:200]}")
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return _number([result])
    if data.get("resultType") != "vector" or not isinstance(result, list):
        return Reading(None, "query must return a number or an instant vector")
    if not result:
        return Reading(None, "query returned nothing")
    return _number([series.get("value") for series in result])


def _number(pairs: list[Any]) -> Reading:
    try:
        total = sum(float(pair[1]) for pair in pairs)
    except (TypeError, ValueError, IndexError):
        return Reading(None, "query returned something that is not a number")
    if math.isnan(total) or math.isinf(total):
        return Reading(None, "query returned no usable number (NaN)")
    return Reading(total)
