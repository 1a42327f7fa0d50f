"""Incident statistics per component and rule: how many, and the mean times to acknowledge,
to resolve and to the first customer notice, over incidents opened since a given time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from detector.store.connection import Connection


async def per_rule(connection: Connection, since: datetime) -> list[dict[str, Any]]:
    """One row per (component, rule): ``incidents``, ``acknowledged``, ``resolved``,
    ``notified`` counts and ``mtta_s``, ``mttr_s``, ``first_notice_s`` means in seconds (None
    where no incident got that far)."""
    rows = await connection.fetch(
        """SELECT i.component, i.rule, count(*) AS incidents,
                  count(i.acknowledged_at) AS acknowledged, count(i.resolved_at) AS resolved,
                  count(notice.first_at) AS notified,
                  avg(extract(epoch FROM i.acknowledged_at - i.opened_at)) AS mtta_s,
                  avg(extract(epoch FROM i.resolved_at - i.opened_at)) AS mttr_s,
                  avg(extract(epoch FROM notice.first_at - i.opened_at)) AS first_notice_s
           FROM incidents i
           LEFT JOIN LATERAL (
             SELECT min(u.created_at) AS first_at
             FROM public_incident_links l
             JOIN public_incident_updates u ON u.public_incident_id = l.public_incident_id
             WHERE l.incident_id = i.id AND u.created_at >= i.opened_at) notice ON true
           WHERE i.opened_at >= $1
           GROUP BY i.component, i.rule
           ORDER BY i.component NULLS LAST, i.rule""",
        since,
    )
    return [
        {
            **dict(row),
            **{key: _seconds(row[key]) for key in ("mtta_s", "mttr_s", "first_notice_s")},
        }
        for row in rows
    ]


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)
