"""The rule-file schema: strict pydantic models (unknown keys are errors) that are also the
running rule set, so what ``rules check`` validates is exactly what the engine uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from detector.domain.durations import Duration, PositiveDuration
from detector.domain.model import Severity
from detector.ruleset.channel_specs import Name, Strict
from detector.ruleset.impact_rules import ImpactSpec
from detector.ruleset.matchers import Matcher, parse_matcher
from detector.ruleset.notice_rules import RuleNoticeSpec
from detector.ruleset.templates import check_template
from responders.escalation import EscalationPolicy, EscalationStep
from responders.statuspage.model import ComponentLevel

LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$|^\.\.\.$")]
Template = Annotated[str, AfterValidator(check_template)]
OutageLevel = Literal["degraded_performance", "partial_outage", "major_outage"]
"""The component statuses an incident can mean (maintenance and operational are not outages)."""


def _matcher(value: object) -> object:
    return parse_matcher(value) if isinstance(value, str) else value


MatcherField = Annotated[
    Matcher,
    BeforeValidator(_matcher),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ['alertname="PgBouncerPoolSaturated"']}),
]


Selector = tuple[MatcherField, ...]


class ThresholdSpec(Strict):
    """At least ``count`` matching alerts within ``within`` (optionally distinct label values)."""

    count: int = Field(ge=1, le=10_000)
    within: PositiveDuration
    distinct: LabelName | None = None


class AbsentSpec(Strict):
    """After a matching alert fires, expect an ``expect`` alert within ``within``, else open."""

    expect: Selector = Field(min_length=1)
    within: PositiveDuration


class HeartbeatSpec(Strict):
    """The matching alert must keep arriving; open when none was seen for ``within``."""

    within: PositiveDuration


class SupersedesSpec(Strict):
    """While an incident of this rule is open, incidents of ``rules`` whose group labels agree
    on ``equal`` are recorded but page nobody (Alertmanager's inhibit rules, keyed on incidents).
    A missing label counts as empty; no ``equal`` labels means any group."""

    rules: tuple[Name, ...] = Field(min_length=1)
    equal: tuple[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], ...] = ()


CONDITION_FIELDS = ("for_", "threshold", "absent", "heartbeat", "all_of")


class RuleSpec(Strict):
    """What to watch, when it counts, what incident it opens, and who is paged."""

    model_config = ConfigDict(populate_by_name=True)

    name: Name
    description: str = ""
    match: Selector = ()
    group_by: tuple[LabelName, ...] = ()
    for_: PositiveDuration | None = Field(default=None, alias="for")
    threshold: ThresholdSpec | None = None
    absent: AbsentSpec | None = None
    heartbeat: HeartbeatSpec | None = None
    all_of: tuple[Selector, ...] | None = Field(default=None, min_length=2)
    severity: Severity
    title: Template
    summary: Template = ""
    component: Name | None = None
    component_status: OutageLevel | None = None
    escalation_policy: Name | None = None
    auto_resolve: bool = True
    resolve_after: PositiveDuration | None = None
    reopen_within: Duration = timedelta(minutes=5)
    notice: RuleNoticeSpec | None = None
    impact: ImpactSpec | None = None
    supersedes: SupersedesSpec | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> RuleSpec:
        chosen = [name.rstrip("_") for name in CONDITION_FIELDS if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(
                "use only one of for, threshold, absent, heartbeat, all_of"
                f" (got {', '.join(chosen)})"
            )
        if self.component_status is not None and self.component is None:
            raise ValueError("component_status: needs a component to apply to")
        if not self.match and self.all_of is None:
            raise ValueError(
                "match: at least one matcher is required (only all_of rules may omit it)"
            )
        return self

    @property
    def outage_level(self) -> ComponentLevel:
        """What this rule's incidents mean for its component (partial outage unless said)."""
        return ComponentLevel(self.component_status or ComponentLevel.PARTIAL_OUTAGE)

    @property
    def has_condition(self) -> bool:
        """True when matching alone does not open the incident."""
        return any(getattr(self, name) is not None for name in CONDITION_FIELDS)


class ComponentSpec(Strict):
    """A customer-facing part of the shop (what the status page lists)."""

    name: Name
    display_name: str = Field(min_length=1)
    description: str = ""
    impact: ImpactSpec | None = None


TARGET_KINDS = ("schedule", "person", "channel")


def _some_steps(steps: tuple[StepSpec, ...]) -> tuple[StepSpec, ...]:
    """Like ``min_length=1``, but silent when a step already failed: one error per mistake."""
    if not steps:
        raise ValueError("no steps: list at least one")
    return steps


class StepTargetSpec(Strict):
    """One escalation target: whoever ``schedule`` has on call when the step fires, the person
    ``person`` (by id), or the shared channel ``channel``."""

    schedule: Name | None = None
    person: Name | None = None
    channel: Name | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StepTargetSpec:
        given = [kind for kind in TARGET_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            got = f" (got {', '.join(given)})" if given else ""
            raise ValueError(f"name exactly one of schedule, person or channel{got}")
        return self


class StepSpec(Strict):
    """One escalation step: the channels in ``notify`` and everyone in ``targets``, together."""

    notify: tuple[Name, ...] = ()
    targets: tuple[StepTargetSpec, ...] = ()
    escalate_after: Duration | None = None

    @model_validator(mode="after")
    def _someone(self) -> StepSpec:
        if not self.notify and not self.targets:
            raise ValueError("a step needs notify, targets or both: say who is paged")
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        """The shared channels of ``notify``, then those of ``targets``, each once."""
        named = (*self.notify, *(t.channel for t in self.targets if t.channel is not None))
        return tuple(dict.fromkeys(named))

    @property
    def people(self) -> tuple[str, ...]:
        """The people targeted by id, each once."""
        return tuple(dict.fromkeys(t.person for t in self.targets if t.person is not None))

    @property
    def schedules(self) -> tuple[str, ...]:
        """The schedules whose on-call people the step pages, each once."""
        return tuple(dict.fromkeys(t.schedule for t in self.targets if t.schedule is not None))


class EscalationPolicySpec(Strict):
    """An ordered chain of steps; an unacknowledged page moves to the next one. The chain runs
    ``1 + repeat`` times; ``ack_timeout`` pages again when an acknowledged incident is still
    unresolved after it."""

    name: Name
    steps: Annotated[tuple[StepSpec, ...], AfterValidator(_some_steps)]
    repeat: int = Field(default=0, ge=0, le=10)
    ack_timeout: PositiveDuration | None = None

    def to_policy(self) -> EscalationPolicy:
        """The policy as the engine snapshots it onto an incident."""
        return EscalationPolicy(
            name=self.name,
            steps=tuple(
                EscalationStep(s.channels, s.escalate_after, s.people, s.schedules)
                for s in self.steps
            ),
            repeat=self.repeat,
            ack_timeout=self.ack_timeout,
        )
