"""What a journey run found: per step, and for the run as a whole. Frozen and JSON-ready, since
they are stored as the journey's last result, exported as metrics and shown to people."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class FailureReason(StrEnum):
    """Why a step failed: exactly one per failed step."""

    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    ASSERTION = "assertion"
    EXTRACTION = "extraction"


class StepStatus(StrEnum):
    """A step passed, failed, or was not run because an earlier step failed."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Phase(StrEnum):
    """blackbox_exporter's request phases (``probe_http_duration_seconds{phase}``)."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    PROCESSING = "processing"
    """From the request being sent to the first byte of the answer."""
    TRANSFER = "transfer"


TRANSIENT = frozenset({FailureReason.DNS, FailureReason.CONNECT, FailureReason.TIMEOUT})
RETRIED_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer, as the pure checks see it."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    cookies: Mapping[str, str]
    latency_s: float


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did: its verdict and, when it ran, what it saw and how long each phase took."""

    name: str
    status: StepStatus
    reason: FailureReason | None = None
    detail: str = ""
    http_status: int = 0
    latency_s: float = 0.0
    phases: Mapping[str, float] = field(default_factory=dict)
    attempts: int = 0
    body: str = ""
    """The start of a failed step's answer, secrets redacted; empty otherwise."""

    @property
    def retryable(self) -> bool:
        """Whether another attempt could pass: the network, or a gateway that gave up."""
        return self.reason in TRANSIENT or (
            self.reason is FailureReason.HTTP_STATUS and self.http_status in RETRIED_STATUSES
        )

    def as_json(self) -> dict[str, Any]:
        """The step as stored and served."""
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
            "http_status": self.http_status,
            "latency_s": round(self.latency_s, 6),
            "phases": {str(name): round(value, 6) for name, value in self.phases.items()},
            "attempts": self.attempts,
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run of one journey at one location."""

    journey: str
    location: str
    run_id: str
    started_at: datetime
    duration_s: float
    steps: tuple[StepResult, ...]

    @property
    def success(self) -> bool:
        """A run succeeds when no step failed (cleanup steps included)."""
        return all(step.status is not StepStatus.FAILED for step in self.steps)

    @property
    def failed_step(self) -> StepResult | None:
        """The first failed step: the evidence."""
        return next((s for s in self.steps if s.status is StepStatus.FAILED), None)

    def as_json(self) -> dict[str, Any]:
        """The run as stored and served."""
        return {
            "journey": self.journey,
            "location": self.location,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 6),
            "success": self.success,
            "steps": [step.as_json() for step in self.steps],
        }
