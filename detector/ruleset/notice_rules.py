"""What rule files say about customer notices: per rule, how its first notice is published and
the plain words for what customers see; per directory (a ``notices:`` section in one file), the
jargon list, the update cadence per severity, and the reminder and quiet-period lengths."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from detector.domain.durations import PositiveDuration, format_duration, parse_duration
from detector.domain.model import Severity
from responders.notices.model import PublishMode

_AFTER = re.compile(r"after\s+(\S+)\s+unless\s+vetoed")


class Strict(BaseModel):
    """Frozen, unknown keys are errors (as every rule-file model; ``schema`` builds on this
    module, so it cannot lend its own base)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Publish(Strict):
    """``immediately``, ``after 5m unless vetoed`` or ``draft``."""

    mode: PublishMode
    delay: timedelta = timedelta(0)

    def __str__(self) -> str:
        if self.mode is PublishMode.AFTER_VETO_WINDOW:
            return f"after {format_duration(self.delay)} unless vetoed"
        return self.mode.value


def _publish(value: object) -> object:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in (PublishMode.IMMEDIATELY, PublishMode.DRAFT):
        return Publish(mode=PublishMode(text))
    match = _AFTER.fullmatch(text)
    if match is None:
        raise ValueError(
            "use 'immediately', 'after DURATION unless vetoed' (say 'after 5m unless vetoed')"
            " or 'draft'"
        )
    delay = parse_duration(match.group(1))
    if delay <= timedelta(0):
        raise ValueError("the veto window must be longer than 0s (or publish: immediately)")
    return Publish(mode=PublishMode.AFTER_VETO_WINDOW, delay=delay)


PublishField = Annotated[
    Publish,
    BeforeValidator(_publish),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["immediately", "after 5m unless vetoed"]}),
]


class RuleNoticeSpec(Strict):
    """A rule's public side: how its first notice goes out and what customers are told."""

    publish: PublishField
    title: str = ""
    """The public incident's name; by default "Problems with <component>"."""
    impact: str = ""
    """What customers see, in their words ("Some customers cannot pay by card")."""
    still_works: str = ""
    """What still works ("Your cart is kept; no card is charged twice")."""


DEFAULT_CADENCE = {
    Severity.CRITICAL: timedelta(minutes=30),
    Severity.MAJOR: timedelta(minutes=30),
    Severity.MINOR: timedelta(minutes=60),
    Severity.INFO: timedelta(minutes=60),
}


class NoticePolicySpec(Strict):
    """How often customers hear from us, and which words they must never read."""

    jargon: tuple[Annotated[str, Field(min_length=1)], ...] = ("PgBouncer", "5xx", "p99", "k8s")
    cadence: dict[Severity, PositiveDuration] = Field(default_factory=lambda: dict(DEFAULT_CADENCE))
    """Longest time between two public updates, by the incident's severity."""
    remind_before: PositiveDuration = timedelta(minutes=5)
    """How long before an update is due the commander is reminded to write it."""
    quiet_period: PositiveDuration = timedelta(minutes=15)
    """After alerts clear by themselves, how long the notice stays in monitoring."""

    def every(self, severity: Severity) -> timedelta:
        """The cadence for ``severity`` (the default where the file names none)."""
        return self.cadence.get(severity, DEFAULT_CADENCE[severity])
