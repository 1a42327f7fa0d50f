"""Impact samples: an open incident's order and revenue rates beside their baseline, one row a
refresh (``engine.impact_stage``); ``domain.impact`` sums them into what is at risk."""

from __future__ import annotations

from datetime import datetime

from detector.domain.impact import ImpactSample, Rates, estimate
from detector.store.connection import Connection


async def add_sample(connection: Connection, incident_id: int, sample: ImpactSample) -> None:
    """Keep one refresh's rates (a second one at the same moment is a replay and is ignored)."""
    orders, revenue = sample.orders, sample.revenue
    await connection.execute(
        """INSERT INTO impact_samples (incident_id, at, order_rate, order_baseline, revenue_rate,
             revenue_baseline, unknown_reason) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT DO NOTHING""",
        incident_id,
        sample.at,
        orders and orders.rate,
        orders and orders.baseline,
        revenue and revenue.rate,
        revenue and revenue.baseline,
        sample.unknown_reason,
    )


async def samples(connection: Connection, incident_id: int) -> list[ImpactSample]:
    """The incident's samples, oldest first."""
    rows = await connection.fetch(
        """SELECT at, order_rate, order_baseline, revenue_rate, revenue_baseline, unknown_reason
           FROM impact_samples WHERE incident_id = $1 ORDER BY at""",
        incident_id,
    )
    return [
        ImpactSample(
            at=row["at"],
            orders=_rates(row["order_rate"], row["order_baseline"]),
            revenue=_rates(row["revenue_rate"], row["revenue_baseline"]),
            unknown_reason=row["unknown_reason"],
        )
        for row in rows
    ]


async def described(connection: Connection, incident_id: int, opened_at: datetime) -> str | None:
    """The impact so far in the words the API and CLI use, for the pages being queued; None
    before the first sample, or when nothing measures the incident (no queries configured)."""
    measured = await samples(connection, incident_id)
    return estimate(opened_at, measured).describe() if measured else None


def _rates(rate: float | None, baseline: float | None) -> Rates | None:
    return None if rate is None or baseline is None else Rates(rate, baseline)
