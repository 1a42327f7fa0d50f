"""What each component shows and what the page says overall, decided from what is known.

A status a person set wins; otherwise the worst level among the component's open incidents; a
running maintenance shows only when nothing is broken (customers care about the outage more).
The page indicator follows the components, as Statuspage's does, and an open incident on an
otherwise operational page still counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from responders.statuspage.model import (
    ComponentLevel,
    ComponentOverride,
    Impact,
    PublicIncident,
)


@dataclass(frozen=True, slots=True)
class Shown:
    """A component's status and since when it holds (None: operational all along)."""

    status: ComponentLevel
    since: datetime | None


def component_status(
    component: str,
    override: ComponentOverride | None,
    incident_level: ComponentLevel | None,
    open_incidents: Iterable[PublicIncident],
    maintenance_since: datetime | None,
) -> Shown:
    """What ``component`` shows: the hand-set status, else its incidents' worst level, else
    maintenance (``maintenance_since`` is when the running one began), else operational."""
    if override is not None:
        return Shown(override.status, override.set_at)
    if incident_level is not None and incident_level is not ComponentLevel.OPERATIONAL:
        started = [i.created_at for i in open_incidents if component in i.components]
        return Shown(incident_level, min(started, default=None))
    if maintenance_since is not None:
        return Shown(ComponentLevel.UNDER_MAINTENANCE, maintenance_since)
    return Shown(ComponentLevel.OPERATIONAL, None)


@dataclass(frozen=True, slots=True)
class Indicator:
    """The page's one-line status: Statuspage's indicator and its wording."""

    indicator: Impact
    description: str


_DESCRIPTIONS = {
    ComponentLevel.MAJOR_OUTAGE: "Major System Outage",
    ComponentLevel.PARTIAL_OUTAGE: "Partial System Outage",
    ComponentLevel.DEGRADED_PERFORMANCE: "Degraded System Service",
    ComponentLevel.UNDER_MAINTENANCE: "Service Under Maintenance",
    ComponentLevel.OPERATIONAL: "All Systems Operational",
}
_INCIDENT_ONLY = {
    Impact.CRITICAL: "Major System Outage",
    Impact.MAJOR: "Partial System Outage",
    Impact.MINOR: "Minor Service Outage",
}


def indicator(
    levels: Mapping[str, ComponentLevel], open_incidents: Iterable[PublicIncident]
) -> Indicator:
    """The page indicator: from the worst component, or the worst open incident's impact when
    every component is operational or under maintenance."""
    worst = max(levels.values(), key=lambda level: level.severity, default=None)
    if worst is not None and worst.impact is not Impact.NONE:
        return Indicator(worst.impact, _DESCRIPTIONS[worst])
    impact = max((i.impact for i in open_incidents), key=lambda i: i.rank, default=Impact.NONE)
    if impact is not Impact.NONE:
        return Indicator(impact, _INCIDENT_ONLY[impact])
    return Indicator(Impact.NONE, _DESCRIPTIONS[worst or ComponentLevel.OPERATIONAL])
