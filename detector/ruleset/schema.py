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


class StepSpec(Strict):
    """One escalation step."""

    notify: tuple[Name, ...] = Field(min_length=1)
    escalate_after: Duration | None = None


class EscalationPolicySpec(Strict):
    """An ordered chain of steps; an unacknowledged page moves to the next one."""

    name: Name
    steps: tuple[StepSpec, ...] = Field(min_length=1)
