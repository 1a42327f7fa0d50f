"""What a rule or component says about business impact: the shop's order rate (and revenue
rate) as Prometheus queries, and which baseline an incident's rates are held against."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Baseline(StrEnum):
    """What an incident's rate is compared with."""

    WEEK = "week"
    """The same moment one week earlier (PromQL ``offset 1w``): follows the daily rhythm."""
    HOUR = "hour"
    """The average of the hour before the incident opened: for shops without a week of data."""


class ImpactSpec(BaseModel):
    """``impact:`` on a rule or component; each query must return one number per second."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orders: str = Field(min_length=1, max_length=2000)
    revenue: str | None = Field(default=None, min_length=1, max_length=2000)
    baseline: Baseline = Baseline.WEEK
