"""The page a channel delivers: what an on-call engineer reads first, and the links to act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PageContent:
    """What was decided about an incident, as recorded when the page was queued."""

    event: str
    incident_id: int
    title: str
    severity: str
    summary: str
    state: str
    rule: str
    component: str | None
    group: dict[str, str]
    step: int
    epoch: int | None = None  # the incident's epoch when queued (None in older queued pages)


@dataclass(frozen=True, slots=True)
class PageLinks:
    """Where the engineer can look at the incident and, while it is unacknowledged, ack it."""

    incident: str
    acknowledge: str | None


def render_page(content: PageContent, links: PageLinks) -> dict[str, Any]:
    """The JSON body a webhook channel posts (stable, documented field names)."""
    body: dict[str, Any] = {
        "version": "1",
        "event": content.event,
        "incident": {
            "id": content.incident_id,
            "title": content.title,
            "severity": content.severity,
            "summary": content.summary,
            "state": content.state,
            "rule": content.rule,
            "component": content.component,
            "group": content.group,
        },
        "escalation_step": content.step,
        "links": {"incident": links.incident},
    }
    if links.acknowledge:
        body["links"]["acknowledge"] = links.acknowledge
    return body
