"""Reading what a report needs from the store: the incident with its timeline, its impact
samples and its public incident, in one read-only transaction."""

from __future__ import annotations

from datetime import datetime

from detector.engine.impact import impact_of
from detector.report.chart import order_rate_chart
from detector.report.facts import Report, build_report, when
from detector.ruleset.rules import RuleSet
from detector.store import impact as impact_store
from detector.store import public_incidents, queries
from detector.store.connection import Connection


async def incident_report(
    connection: Connection, rules: RuleSet, incident_id: int, status_page: str, now: datetime
) -> Report | None:
    """The incident's report, or None when there is no such incident; ``status_page`` is the
    public status page's URL, for links to the incident's notices."""
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        detail = await queries.incident_detail(connection, incident_id)
        if detail is None:
            return None
        samples = await impact_store.samples(connection, incident_id)
        public = await public_incidents.of_incident(connection, incident_id)
    opened = when(detail["opened_at"])
    assert opened is not None
    impact = impact_of(rules, detail["rule"], detail["component"], opened, samples)
    chart = order_rate_chart(samples, opened, when(detail["resolved_at"]))
    url = None if public is None else f"{status_page.rstrip('/')}/status#{public.public_id}"
    return build_report(detail, public, url, impact, chart, now)
