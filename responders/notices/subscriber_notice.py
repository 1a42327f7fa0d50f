"""What a public update says to subscribers: the mail's subject and text, and the Statuspage
``incident`` and ``page`` objects a webhook carries (built once per update by the fan-out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from responders.statuspage.model import IncidentStatus

LABELS = {
    IncidentStatus.INVESTIGATING: "Investigating",
    IncidentStatus.IDENTIFIED: "Identified",
    IncidentStatus.MONITORING: "Monitoring",
    IncidentStatus.RESOLVED: "Resolved",
    IncidentStatus.POSTMORTEM: "Post-incident report",
}


def notice_payload(
    page_name: str,
    page: Mapping[str, Any],
    incident: Mapping[str, Any],
    status: IncidentStatus,
    body: str,
    shown_at: str,
) -> dict[str, Any]:
    """The queued content of one update for every subscriber: ``subject``, ``text``, and the
    webhook's ``incident`` and ``page`` objects."""
    label = LABELS[status]
    name = incident["name"]
    text = f"{name}\n{label} ({shown_at})\n\n{body}\n\nFollow it at {incident['shortlink']}"
    return {
        "subject": f"[{page_name}] {label}: {name}",
        "text": text,
        "incident": dict(incident),
        "page": dict(page),
    }
