"""Component statuses a person set by hand; each wins over what incidents and maintenance
windows say until it is cleared. Every write notifies the status page at commit."""

from __future__ import annotations

from datetime import datetime

from detector.store import wakeup
from detector.store.connection import Connection, rows_affected
from responders.statuspage.model import ComponentLevel, ComponentOverride


async def set_status(
    connection: Connection,
    component: str,
    status: ComponentLevel,
    set_by: str,
    reason: str,
    at: datetime,
) -> ComponentOverride:
    """Set (or replace) ``component``'s status by hand."""
    await connection.execute(
        """INSERT INTO component_statuses (component, status, set_by, set_at, reason)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (component) DO UPDATE SET status = $2, set_by = $3, set_at = $4,
             reason = $5""",
        component,
        status.value,
        set_by,
        at,
        reason,
    )
    await wakeup.notify(connection, wakeup.STATUSPAGE_CHANNEL)
    return ComponentOverride(component, status, set_by, at, reason)


async def clear(connection: Connection, component: str) -> bool:
    """Hand ``component`` back to its incidents and windows; False if nothing was set."""
    cleared = rows_affected(
        await connection.execute("DELETE FROM component_statuses WHERE component = $1", component)
    )
    if cleared:
        await wakeup.notify(connection, wakeup.STATUSPAGE_CHANNEL)
    return cleared > 0


async def overrides(connection: Connection) -> dict[str, ComponentOverride]:
    """Every status set by hand, by component."""
    rows = await connection.fetch(
        "SELECT component, status, set_by, set_at, reason FROM component_statuses"
    )
    return {
        row["component"]: ComponentOverride(
            row["component"],
            ComponentLevel(row["status"]),
            row["set_by"],
            row["set_at"],
            row["reason"],
        )
        for row in rows
    }
