"""Frozen domain types shared by intake, rules, decisions and the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from detector.domain.reasons import DecisionReason
from responders.escalation import EscalationPolicy
from responders.messages import PageEvent


class Source(StrEnum):
    """Where a signal came from."""

    ALERTMANAGER = "alertmanager"
    PROBE = "probe"


class AlertStatus(StrEnum):
    """Alertmanager's per-alert status."""

    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """How bad an incident is; ordered from worst to mildest."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


class IncidentState(StrEnum):
    """The incident lifecycle: triggered → acknowledged → resolved."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


Occurrence = tuple[str, datetime]
"""An alert occurrence: (fingerprint, startsAt); a re-fire keeps the fingerprint, not startsAt."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One normalised observation of one alert."""

    source: Source
    name: str
    fingerprint: str
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    received_at: datetime
    group_key: str = ""
    receiver: str = ""

    @property
    def occurrence(self) -> Occurrence:
        """The identity used for deduplication."""
        return (self.fingerprint, self.starts_at)


@dataclass(frozen=True, slots=True)
class AlertState:
    """What an incident knows about one alert occurrence attached to it."""

    fingerprint: str
    starts_at: datetime
    status: AlertStatus
    ends_at: datetime | None
    labels: Mapping[str, str]
    last_seen_at: datetime

    @property
    def occurrence(self) -> Occurrence:
        """The identity used for deduplication."""
        return (self.fingerprint, self.starts_at)


@dataclass(frozen=True, slots=True)
class Incident:
    """The stateful record of one problem, as decisions see it."""

    rule: str
    group_key: str
    group_labels: Mapping[str, str]
    state: IncidentState
    severity: Severity
    title: str
    summary: str
    component: str | None
    policy: EscalationPolicy | None
    opened_at: datetime
    last_signal_at: datetime
    id: int | None = None
    epoch: int = 0
    escalation_step: int = 0
    escalation_round: int = 0
    """Which run of the policy's chain the incident is in: 0, then one more per ``repeat``."""
    escalated_at: datetime | None = None
    """When the current step paged (None while the first step waits to resolve who is on
    call): the next step is due its delay after this."""
    paged: tuple[str, ...] = ()
    """Everyone who received a page (shared channel names and people's ``person:<id>:<i>``
    contact keys), so acks and resolutions go to them and no one else."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    alerts: Mapping[Occurrence, AlertState] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        """True until the incident resolves."""
        return self.state is not IncidentState.RESOLVED


class TimerKind(StrEnum):
    """What a due timer asks the engine to do; the ``notice_`` kinds are the notices stage's,
    the ``impact_`` kinds the impact stage's, the others the timer stage's
    (``store.timers.claim_due``)."""

    ESCALATE = "escalate"
    SILENCE_CHECK = "silence_check"
    CONDITION_CHECK = "condition_check"
    NOTICE_PUBLISH = "notice_publish"
    NOTICE_REMINDER = "notice_reminder"
    NOTICE_HOLDING = "notice_holding"
    NOTICE_QUIET = "notice_quiet"
    NOTICE_FANOUT = "notice_fanout"
    IMPACT_REFRESH = "impact_refresh"
    ACK_TIMEOUT = "ack_timeout"


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable timer as the engine claims it: about an incident, or a rule group's condition."""

    id: int
    incident_id: int | None
    kind: TimerKind
    due_at: datetime
    epoch: int
    payload: Mapping[str, Any]
    rule: str | None = None
    group_key: str | None = None


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """A timer a decision asks to schedule; it carries the incident's new epoch."""

    kind: TimerKind
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PageOrder:
    """A page to queue in the outbox for one channel."""

    channel: str
    event: PageEvent
    step: int
    round: int = 0
    """The run of the chain (a repeat pages the same step again, in the same epoch)."""
    summary: str | None = None
    """What the page says instead of the incident's summary (an ack naming what it covers)."""

    @property
    def dedup_suffix(self) -> str:
        """Together with the incident id and epoch, the page's idempotency key."""
        step = f"{self.step}" if self.round == 0 else f"{self.step}r{self.round}"
        return f"{self.event}:{step}:{self.channel}"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an incident's history."""

    kind: str
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """What should change, returned by the pure decision functions and applied by the store.

    ``incident`` is the new state (``None`` when nothing changes); ``reason`` names why, for logs,
    metrics, the API and tests.
    """

    reason: DecisionReason
    incident: Incident | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    timers: tuple[TimerSpec, ...] = ()
    pages: tuple[PageOrder, ...] = ()
    changed_alerts: tuple[AlertState, ...] = ()
    opened: bool = False
    resolved: bool = False
