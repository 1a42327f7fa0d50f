"""Business impact: orders and revenue at risk while an incident is open, from rate samples.

Each sample holds the shop's order (and revenue) rate at one moment beside its baseline. The
shortfall ``max(baseline - rate, 0)`` is held for the time since the previous sample (since the
incident opened, for the first), and the sum is what the incident has cost so far. A sample
Prometheus could not give is a gap: it adds nothing, and when no sample was ever measured the
impact is unknown, with the reason, rather than a figure anyone made up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class ImpactStatus(StrEnum):
    """Whether the incident's impact could be measured."""

    ESTIMATED = "estimated"
    UNKNOWN = "unknown"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True, slots=True)
class Rates:
    """One measured rate (per second) and its baseline."""

    rate: float
    baseline: float

    @property
    def shortfall(self) -> float:
        """How far below its baseline the rate is (never negative: a busier shop loses none)."""
        return max(self.baseline - self.rate, 0.0)


@dataclass(frozen=True, slots=True)
class ImpactSample:
    """The rates at one moment, or why they could not be measured (``orders`` is None then)."""

    at: datetime
    orders: Rates | None
    revenue: Rates | None = None
    unknown_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Impact:
    """What an incident has cost so far, as the API, CLI, pages and report show it."""

    status: ImpactStatus
    orders_at_risk: float | None = None
    revenue_at_risk: float | None = None
    order_rate: float | None = None
    order_baseline: float | None = None
    measured_at: datetime | None = None
    reason: str | None = None
    """Why the impact is unknown, or why the latest refresh could not measure it."""

    def as_json(self) -> dict[str, Any]:
        """The ``impact`` field of an incident in the API."""
        return {
            "status": self.status.value,
            "orders_at_risk": _rounded(self.orders_at_risk),
            "revenue_at_risk": _rounded(self.revenue_at_risk),
            "order_rate": self.order_rate,
            "order_baseline": self.order_baseline,
            "measured_at": self.measured_at.isoformat() if self.measured_at else None,
            "reason": self.reason,
        }

    def describe(self) -> str:
        """One line for a terminal, a page or a report."""
        if self.status is ImpactStatus.NOT_CONFIGURED:
            return "impact not measured (no impact queries for this rule or component)"
        if self.status is ImpactStatus.UNKNOWN:
            return f"impact unknown: {self.reason}"
        line = f"about {self.orders_at_risk:,.0f} orders at risk"
        if self.revenue_at_risk is not None:
            line += f", {self.revenue_at_risk:,.2f} revenue at risk"
        if self.reason:
            line += f" (latest refresh: {self.reason})"
        return line


NOT_CONFIGURED = Impact(ImpactStatus.NOT_CONFIGURED)


def estimate(opened_at: datetime, samples: Sequence[ImpactSample]) -> Impact:
    """Sum the shortfalls of ``samples`` (oldest first) since ``opened_at``."""
    if not samples:
        return Impact(ImpactStatus.UNKNOWN, reason="not measured yet")
    orders = revenue = 0.0
    has_revenue = False
    measured: ImpactSample | None = None
    previous = opened_at
    for sample in samples:
        seconds = max((sample.at - previous).total_seconds(), 0.0)
        previous = max(previous, sample.at)
        if sample.orders is None:
            continue
        measured = sample
        orders += sample.orders.shortfall * seconds
        if sample.revenue is not None:
            has_revenue = True
            revenue += sample.revenue.shortfall * seconds
    latest = samples[-1]
    if measured is None or measured.orders is None:
        return Impact(ImpactStatus.UNKNOWN, reason=latest.unknown_reason or "no data")
    return Impact(
        ImpactStatus.ESTIMATED,
        orders_at_risk=orders,
        revenue_at_risk=revenue if has_revenue else None,
        order_rate=measured.orders.rate,
        order_baseline=measured.orders.baseline,
        measured_at=measured.at,
        reason=latest.unknown_reason,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
