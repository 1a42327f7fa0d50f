"""Pages to PagerDuty through its Events API v2: one alert per incident, kept in step.

A call to act is a ``trigger``, an acknowledgement an ``acknowledge`` and a resolution a
``resolve``, all with the incident's ``dedup_key`` (``stormwatch-<id>``), so PagerDuty folds
repeats and escalations into one alert and closes it when Stormwatch does. PagerDuty bundles and
deduplicates by itself, so digests and reminders are not declared. It answers 202; 400 (an
invalid event) is given up, 429 and 5xx are retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import aiohttp

from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.webhook import post
from responders.messages import Message, MessageKind, Page, PageEvent, PageMessage

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1024

SEVERITIES: Mapping[str, str] = {
    "critical": "critical",
    "major": "error",
    "minor": "warning",
    "info": "info",
}
"""Our severities in PagerDuty's words (anything else is an ``error``)."""

ACTIONS: Mapping[PageEvent, str] = {
    PageEvent.TRIGGERED: "trigger",
    PageEvent.REOPENED: "trigger",
    PageEvent.ACKNOWLEDGED: "acknowledge",
    PageEvent.RESOLVED: "resolve",
}


def dedup_key(incident_id: int) -> str:
    """One PagerDuty alert per incident, across escalation steps, reopenings and replicas."""
    return f"stormwatch-{incident_id}"


class PagerDutyChannel:
    """One PagerDuty integration; its routing key is a secret, never in errors or ``repr``."""

    type: ClassVar[str] = "pagerduty"
    kinds: frozenset[MessageKind] = frozenset({MessageKind.PAGE})

    def __init__(
        self,
        name: str,
        routing_key: str,
        session: aiohttp.ClientSession,
        url: str = EVENTS_URL,
        timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self.name = name
        self._routing_key = routing_key
        self._session = session
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())

    def __repr__(self) -> str:
        return f"PagerDutyChannel(name={self.name!r})"

    async def send(self, message: Message, idempotency_key: str) -> None:
        """POST the event once; PagerDuty deduplicates by ``dedup_key`` itself."""
        if not isinstance(message, PageMessage):
            raise DeliveryError(
                FailureReason.UNSUPPORTED_KIND, retryable=False, detail=message.kind
            )
        body = json.dumps(event(message, self._routing_key)).encode()
        headers = {"Content-Type": "application/json"}
        await post(self._session, self._url, body, headers, self._timeout)


def event(message: PageMessage, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for a page: a full alert for a call to act, only the action and
    the key for an acknowledgement or a resolution."""
    page = message.page
    action = ACTIONS[page.event]
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(page.incident_id),
    }
    if action != "trigger":
        return body
    body["payload"] = _payload(page)
    body["links"] = [{"href": message.links.incident, "text": f"Incident #{page.incident_id}"}]
    if message.links.acknowledge:
        body["links"].append({"href": message.links.acknowledge, "text": "Acknowledge"})
    body["client"] = "Stormwatch"
    body["client_url"] = message.links.incident
    return body


def _payload(page: Page) -> dict[str, Any]:
    """PagerDuty's common event format: where (``source``: the incident's group labels), what
    part (``component``), which rule (``group`` and ``class``), and our details."""
    summary = f"{page.title}: {page.summary}" if page.summary else page.title
    details: dict[str, Any] = {
        "incident": page.incident_id,
        "rule": page.rule,
        "group": dict(page.group),
        "escalation_step": page.step,
        "summary": page.summary,
    }
    if page.impact:
        details["impact"] = page.impact
    payload: dict[str, Any] = {
        "summary": _clip(summary, MAX_SUMMARY),
        "source": _source(page),
        "severity": SEVERITIES.get(page.severity, "error"),
        "group": page.rule,
        "class": page.rule,
        "custom_details": details,
    }
    if page.component:
        payload["component"] = page.component
    return payload


def _source(page: Page) -> str:
    """The affected system: the group labels (``cluster=eu-1, database=shop``), else the rule."""
    labels = ", ".join(f"{key}={value}" for key, value in sorted(page.group.items()))
    return labels or page.rule


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
