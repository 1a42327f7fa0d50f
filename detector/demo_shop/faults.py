"""The faults the demo shop can be told to have, and the request that turns one on.

Each fault breaks the shop the way a real outage would, so that it shows in the same metrics the
shipped Prometheus rules watch and in what a checkout journey sees. Turning one on twice only
updates its setting; clearing one that is off does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Fault(StrEnum):
    """A way to break the shop; the value is its name in the API and on the command line."""

    POOL_EXHAUSTION = "pool-exhaustion"
    """A runaway job holds every database connection: requests queue, then fail with 503."""
    PAYMENT_DOWN = "payment-down"
    """The payment provider answers 503: payments fail with 502."""
    LATENCY = "latency"
    """Every storefront request takes ``seconds`` longer."""
    MAIL_STUCK = "mail-stuck"
    """The mail relay sends nothing: order confirmations pile up in its active queue."""
    FAILOVER_STUCK = "failover-stuck"
    """The database lost its primary and no replica was promoted: writes fail with 503."""


DEFAULT_LATENCY_SECONDS = 2.0


class FaultRequest(BaseModel):
    """Body of ``POST /faults``."""

    model_config = ConfigDict(extra="forbid")
    name: Fault
    seconds: float | None = Field(
        default=None, gt=0, le=300, description="added latency; only for the latency fault"
    )

    @model_validator(mode="after")
    def _seconds_only_for_latency(self) -> FaultRequest:
        if self.seconds is not None and self.name is not Fault.LATENCY:
            raise ValueError("seconds applies to the latency fault only")
        return self


@dataclass
class ActiveFaults:
    """The faults turned on now, with the latency fault's delay."""

    on: set[Fault] = field(default_factory=set)
    latency_seconds: float = 0.0

    def set(self, request: FaultRequest) -> None:
        """Turn a fault on (again: its setting changes)."""
        self.on.add(request.name)
        if request.name is Fault.LATENCY:
            self.latency_seconds = request.seconds or DEFAULT_LATENCY_SECONDS

    def clear(self, fault: Fault) -> bool:
        """Turn a fault off; False when it was not on."""
        if fault not in self.on:
            return False
        self.on.discard(fault)
        if fault is Fault.LATENCY:
            self.latency_seconds = 0.0
        return True

    def __contains__(self, fault: object) -> bool:
        return fault in self.on

    def describe(self) -> list[dict[str, object]]:
        """The active faults as JSON-ready objects, by name."""
        return [
            {"name": fault.value, "seconds": self.latency_seconds}
            if fault is Fault.LATENCY
            else {"name": fault.value}
            for fault in sorted(self.on)
        ]
