"""What customers may see about the shop's health, as frozen records with Statuspage's enums.

Nothing here carries an internal incident id, a rule name or a label: a public incident is
known by its own random ``public_id`` and speaks of components by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class ComponentLevel(StrEnum):
    """A component's status, as Statuspage spells it."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"

    @property
    def severity(self) -> int:
        """Order for "the worst of": maintenance ranks above operational, below any outage."""
        return _LEVEL_ORDER.index(self)

    @property
    def impact(self) -> Impact:
        """The incident impact this level means (Statuspage's colour mapping)."""
        return _LEVEL_IMPACT[self]


_LEVEL_ORDER = (
    ComponentLevel.OPERATIONAL,
    ComponentLevel.UNDER_MAINTENANCE,
    ComponentLevel.DEGRADED_PERFORMANCE,
    ComponentLevel.PARTIAL_OUTAGE,
    ComponentLevel.MAJOR_OUTAGE,
)


def worst(levels: list[ComponentLevel] | tuple[ComponentLevel, ...]) -> ComponentLevel:
    """The worst of ``levels``; operational when there are none."""
    return max(levels, key=lambda level: level.severity, default=ComponentLevel.OPERATIONAL)


class IncidentStatus(StrEnum):
    """A public incident's stage, and the stage each of its updates announced."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"

    @property
    def is_final(self) -> bool:
        """Resolved and postmortem promise no further update."""
        return self in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)


class Impact(StrEnum):
    """How bad a public incident is (also the page indicator's scale)."""

    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order for "the worst of"."""
        return list(Impact).index(self)


_LEVEL_IMPACT = {
    ComponentLevel.OPERATIONAL: Impact.NONE,
    ComponentLevel.UNDER_MAINTENANCE: Impact.NONE,
    ComponentLevel.DEGRADED_PERFORMANCE: Impact.MINOR,
    ComponentLevel.PARTIAL_OUTAGE: Impact.MAJOR,
    ComponentLevel.MAJOR_OUTAGE: Impact.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class AffectedComponent:
    """A component's status before and after one public update."""

    component: str
    old_status: ComponentLevel
    new_status: ComponentLevel


@dataclass(frozen=True, slots=True)
class PublicUpdate:
    """One published message of a public incident. ``next_update_at`` is the promise it made
    (None on resolved and postmortem updates)."""

    public_id: str
    status: IncidentStatus
    body: str
    created_at: datetime
    display_at: datetime
    next_update_at: datetime | None = None
    affected_components: tuple[AffectedComponent, ...] = ()


@dataclass(frozen=True, slots=True)
class PublicIncident:
    """One outage as customers see it: per component, whatever internal incidents joined it.
    ``updates`` are newest first, as Statuspage lists them."""

    id: int
    public_id: str
    component: str
    name: str
    status: IncidentStatus
    impact: Impact
    components: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    monitoring_at: datetime | None = None
    resolved_at: datetime | None = None
    postmortem_body: str | None = None
    postmortem_published_at: datetime | None = None
    updates: tuple[PublicUpdate, ...] = field(default=())

    @property
    def is_open(self) -> bool:
        """Not yet resolved (investigating, identified or monitoring)."""
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class ComponentOverride:
    """A component status a person set by hand; it wins over what incidents and windows say
    until it is cleared."""

    component: str
    status: ComponentLevel
    set_by: str
    set_at: datetime
    reason: str = ""


class MaintenanceStatus(StrEnum):
    """A scheduled maintenance's stage, as Statuspage spells it."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class PageInfo:
    """The page itself: the id and name customers see, where it lives, and its time zone."""

    id: str
    name: str
    url: str
    time_zone: str


@dataclass(frozen=True, slots=True)
class Component:
    """A component as the page shows it: its public id, customer wording and current status
    (``since`` is when that status began, None when it has been operational all along)."""

    id: str
    name: str
    display_name: str
    description: str
    position: int
    status: ComponentLevel
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Maintenance:
    """One occurrence of a public maintenance window."""

    public_id: str
    name: str
    body: str
    components: tuple[str, ...]
    scheduled_for: datetime
    scheduled_until: datetime

    def status(self, now: datetime) -> MaintenanceStatus:
        """Where the occurrence stands at ``now``."""
        if now < self.scheduled_for:
            return MaintenanceStatus.SCHEDULED
        if now < self.scheduled_until:
            return MaintenanceStatus.IN_PROGRESS
        return MaintenanceStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class PageState:
    """Everything a public document is rendered from, as of ``now``. ``incidents`` are the
    open ones and those of the history window, newest first."""

    page: PageInfo
    components: tuple[Component, ...]
    incidents: tuple[PublicIncident, ...]
    maintenances: tuple[Maintenance, ...]
    now: datetime

    @property
    def updated_at(self) -> datetime:
        """The latest change the page shows; with none, the start of today (UTC), so a quiet
        page keeps the same bytes, and the same ETag, on every replica all day."""
        changes = [i.updated_at for i in self.incidents]
        changes += [c.since for c in self.components if c.since is not None]
        changes += [
            edge
            for m in self.maintenances
            for edge in (m.scheduled_for, m.scheduled_until)
            if edge <= self.now
        ]
        today = self.now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(changes, default=today)
