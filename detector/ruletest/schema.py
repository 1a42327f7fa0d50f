"""The rule-test file format: alerts at relative times in, expected incidents and pages out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, Field, model_validator

from detector.domain.durations import Duration
from detector.domain.model import AlertStatus, IncidentState, Severity
from detector.ruleset.channel_specs import Strict
from responders.messages import PageEvent

DEFAULT_START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class InputAlert(Strict):
    """An alert as Alertmanager would deliver it, ``at`` after the test starts.

    ``repeat``/``until`` resend the same alert unchanged, as Alertmanager does every
    repeat_interval (that keeps heartbeats and silence timeouts alive).
    """

    at: Duration
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    status: AlertStatus = AlertStatus.FIRING
    repeat: Duration | None = None
    until: Duration | None = None

    @model_validator(mode="after")
    def _repeat_needs_until(self) -> InputAlert:
        if (self.repeat is None) != (self.until is None):
            raise ValueError("repeat and until go together")
        if self.repeat is not None and self.repeat <= timedelta(0):
            raise ValueError("repeat must be longer than 0s")
        return self

    def times(self) -> list[timedelta]:
        """Every moment this alert is delivered."""
        if self.repeat is None or self.until is None:
            return [self.at]
        count = int((self.until - self.at) / self.repeat) + 1
        return [self.at + self.repeat * n for n in range(max(count, 1))]


class Action(Strict):
    """An engineer acknowledging or resolving the open incident of a rule."""

    at: Duration
    ack: str | None = None
    resolve: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Action:
        if (self.ack is None) == (self.resolve is None):
            raise ValueError("give exactly one of ack or resolve (a rule name)")
        return self


class ExpectedIncident(Strict):
    """An incident that must exist at the end; only the fields given are compared."""

    rule: str
    title: str | None = None
    summary: str | None = None
    severity: Severity | None = None
    state: IncidentState | None = None
    component: str | None = None
    group: dict[str, str] | None = None
    opened_at: Duration | None = None
    resolved_at: Duration | None = None


class ExpectedPage(Strict):
    """A page delivered to a channel."""

    at: Duration
    channel: str
    event: PageEvent


class Expectations(Strict):
    """Incidents (all of them, in opening order) and, when given, every page in order."""

    incidents: list[ExpectedIncident] = Field(default_factory=list)
    pages: list[ExpectedPage] | None = None


class RuleTestCase(Strict):
    """One scenario."""

    name: str = Field(min_length=1)
    start: AwareDatetime = DEFAULT_START
    alerts: list[InputAlert] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    run_for: Duration = timedelta(0)
    expect: Expectations


class RuleTestFile(Strict):
    """A file of scenarios against one rules directory (relative to the file)."""

    rules: str = ".."
    tests: list[RuleTestCase] = Field(min_length=1)
