"""What the engine did during a benchmark, for reading beside its figure: the mean time of each
stage and cycle (the service's ``/metrics``), and each hop of an incident's first page (the
database's own timestamps)."""

from __future__ import annotations

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

_TIMED = {"stormwatch_engine_stage_seconds", "stormwatch_engine_cycle_seconds"}


async def stage_times(session: aiohttp.ClientSession, url: str) -> str:
    """The engine's mean time per stage and per detecting cycle so far."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    totals: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in _TIMED:
            continue
        for sample in family.samples:
            part = sample.name.rsplit("_", 1)[-1]
            if part in ("sum", "count"):
                stage = sample.labels.get("stage", "cycle")
                into = totals.setdefault(stage, {"sum": 0.0, "count": 0.0})
                into[part] += sample.value
    means = [
        f"{stage} {t['sum'] / t['count'] * 1000:.1f}" for stage, t in totals.items() if t["count"]
    ]
    return "    engine mean ms: " + ", ".join(means)


async def hops(url: str) -> str:
    """p50/p99 of each hop from the database's own timestamps: an incident's first alert
    received → incident opened (the cycle's clock) → its first page queued → delivered."""
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(
            """WITH first AS (
                 SELECT labels ->> 'incident' AS incident, min(received_at) AS received
                 FROM signals GROUP BY 1),
               paged AS (
                 SELECT DISTINCT ON (o.incident_id) o.incident_id, o.created_at, o.delivered_at
                 FROM outbox o WHERE o.kind = 'page' ORDER BY o.incident_id, o.id),
               hop AS (
                 SELECT extract(epoch FROM i.opened_at - f.received) AS opened,
                        extract(epoch FROM p.created_at - i.opened_at) AS queued,
                        extract(epoch FROM p.delivered_at - p.created_at) AS delivered
                 FROM incidents i
                 JOIN first f ON f.incident = i.group_labels ->> 'incident'
                 JOIN paged p ON p.incident_id = i.id)
               SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY opened) AS opened,
                      percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY queued) AS queued,
                      percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY delivered)
                        AS delivered
               FROM hop"""
        )
    finally:
        await connection.close()
    parts = []
    for name in ("opened", "queued", "delivered"):
        cut = row[name] or [0.0, 0.0]
        parts.append(f"{name} +{cut[0] * 1000:.1f}/{cut[1] * 1000:.1f}")
    return "    hops p50/p99 ms (first alert received ->): " + ", ".join(parts)
