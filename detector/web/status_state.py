"""What the public status page shows, assembled from the rule set (components, public
maintenance) and what the store holds (public incidents, levels, hand-set statuses).

Pure: the snapshot reads the store and calls :func:`page_state`. Public ids of components and
maintenance occurrences are derived by hashing, so every replica shows the same ids and none of
them is an internal name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.ruleset.maintenance import WEEK, MaintenanceWindowSpec, SilenceSpec
from detector.ruleset.rules import RuleSet
from responders.statuspage.levels import component_status
from responders.statuspage.model import (
    Component,
    ComponentLevel,
    ComponentOverride,
    Maintenance,
    MaintenanceStatus,
    PageInfo,
    PageState,
    PublicIncident,
)

MAINTENANCE_HORIZON = timedelta(days=7)
"""Completed maintenance stays listed, and upcoming maintenance is announced, this long."""
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class StoredPage:
    """What the store holds for the page: public incidents (open and recent, newest first),
    each component's worst open level, and the statuses people set."""

    incidents: tuple[PublicIncident, ...]
    levels: Mapping[str, ComponentLevel]
    overrides: Mapping[str, ComponentOverride]


def public_key(kind: str, name: str) -> str:
    """A stable 12-character base36 id for ``name`` (Statuspage's id shape)."""
    number = int.from_bytes(hashlib.sha256(f"{kind}:{name}".encode()).digest()[:8], "big")
    digits = []
    for _ in range(12):
        number, digit = divmod(number, 36)
        digits.append(_BASE36[digit])
    return "".join(digits)


def page_info(name: str, url: str, time_zone: str) -> PageInfo:
    """The page, its id derived from its URL."""
    return PageInfo(public_key("page", url), name, url, time_zone)


def page_state(rules: RuleSet, page: PageInfo, stored: StoredPage, now: datetime) -> PageState:
    """Everything the public documents show at ``now``."""
    maintenance = tuple(
        sorted(
            (m for window in rules.windows for m in occurrences(window, now)),
            key=lambda m: m.scheduled_for,
        )
    )
    open_incidents = [i for i in stored.incidents if i.is_open]
    components = []
    for position, spec in enumerate(rules.components.values(), start=1):
        running = [
            m.scheduled_for
            for m in maintenance
            if spec.name in m.components and m.status(now) is MaintenanceStatus.IN_PROGRESS
        ]
        shown = component_status(
            spec.name,
            stored.overrides.get(spec.name),
            stored.levels.get(spec.name),
            open_incidents,
            min(running, default=None),
        )
        components.append(
            Component(
                id=public_key("component", spec.name),
                name=spec.name,
                display_name=spec.display_name,
                description=spec.description,
                position=position,
                status=shown.status,
                since=shown.since,
            )
        )
    return PageState(page, tuple(components), stored.incidents, maintenance, now)


def occurrences(window: SilenceSpec | MaintenanceWindowSpec, now: datetime) -> list[Maintenance]:
    """The public occurrences of a silence or window worth listing at ``now``: the last one
    completed within the horizon, the running one, and the next one within the horizon."""
    if window.public is None:
        return []
    spans = sorted(_spans(window, now))
    done = [span for span in spans if span[1] <= now and span[1] >= now - MAINTENANCE_HORIZON]
    running = [span for span in spans if span[0] <= now < span[1]]
    coming = [span for span in spans if now < span[0] <= now + MAINTENANCE_HORIZON]
    chosen = done[-1:] + running + coming[:1]
    notice = window.public
    return [
        Maintenance(
            public_id=public_key("maintenance", f"{window.name}@{start.isoformat()}"),
            name=notice.title,
            body=notice.message,
            components=notice.components,
            scheduled_for=start,
            scheduled_until=end,
        )
        for start, end in chosen
    ]


def _spans(
    window: SilenceSpec | MaintenanceWindowSpec, now: datetime
) -> Iterator[tuple[datetime, datetime]]:
    if isinstance(window, SilenceSpec):
        yield window.starts_at, window.ends_at
        return
    today = now.astimezone(window.location).date()
    days = MAINTENANCE_HORIZON.days + 1
    for offset in range(-days, days + 1):
        day = today + timedelta(days=offset)
        if WEEK[day.weekday()] in window.weekdays:
            yield window.occurrence(day)
