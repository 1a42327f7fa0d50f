"""POST pages as JSON to an HTTP endpoint (a chat bridge, a pager gateway, a test receiver)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp

from responders.channels import DeliveryError, classify_status


class WebhookChannel:
    """One configured webhook endpoint. The URL may hold a key: it never appears in errors."""

    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        headers: Mapping[str, str] | None = None,
        timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._headers = dict(headers or {})
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r})"

    async def send(self, body: Mapping[str, Any], idempotency_key: str) -> None:
        """POST ``body``; the Idempotency-Key header lets receivers drop redelivered pages."""
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        }
        try:
            async with self._session.post(
                self._url, data=json.dumps(body), headers=headers, timeout=self._timeout
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            raise DeliveryError("timeout", retryable=True) from None
        except (aiohttp.ClientError, OSError) as err:
            raise DeliveryError("connection", retryable=True, detail=type(err).__name__) from None
        error = classify_status(status)
        if error is not None:
            raise error
