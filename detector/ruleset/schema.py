"""The rule-file schema: strict pydantic models (unknown keys are errors) that are also the
running rule set, so what ``rules check`` validates is exactly what the engine uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from detector.durations import Duration
from detector.model import Severity
from detector.ruleset.matchers import Matcher, parse_matcher
from detector.ruleset.templates import check_template

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$|^\.\.\.$")]
Template = Annotated[str, AfterValidator(check_template)]


def _matcher(value: object) -> object:
    return parse_matcher(value) if isinstance(value, str) else value


MatcherField = Annotated[
    Matcher,
    BeforeValidator(_matcher),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ['alertname="PgBouncerPoolSaturated"']}),
]


class Strict(BaseModel):
    """Base for file models: frozen, and unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class RuleSpec(Strict):
    """What to watch, what incident it opens, and who is paged."""

    name: Name
    description: str = ""
    match: tuple[MatcherField, ...] = Field(min_length=1)
    group_by: tuple[LabelName, ...] = ()
    severity: Severity
    title: Template
    summary: Template = ""
    component: Name | None = None
    escalation_policy: Name | None = None
    auto_resolve: bool = True
    resolve_after: Duration | None = None
    reopen_within: Duration = timedelta(minutes=5)


class ComponentSpec(Strict):
    """A customer-facing part of the shop (what the status page lists)."""

    name: Name
    display_name: str = Field(min_length=1)
    description: str = ""


class RetrySpec(Strict):
    """How the outbox retries a failing channel before dead-lettering the message."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    initial_delay: Duration = timedelta(seconds=5)
    max_delay: Duration = timedelta(minutes=5)


class WebhookChannelSpec(Strict):
    """POST a JSON page to an HTTP endpoint. Put keyed URLs in ``url_env``, not in the file."""

    type: Literal["webhook"]
    name: Name
    url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    url_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = timedelta(seconds=10)
    retry: RetrySpec = RetrySpec()


ChannelSpec = Annotated[WebhookChannelSpec, Field(discriminator="type")]


class StepSpec(Strict):
    """One escalation step."""

    notify: tuple[Name, ...] = Field(min_length=1)
    escalate_after: Duration | None = None


class EscalationPolicySpec(Strict):
    """An ordered chain of steps; an unacknowledged page moves to the next one."""

    name: Name
    steps: tuple[StepSpec, ...] = Field(min_length=1)


class RulesFile(Strict):
    """One YAML file in the rules directory; any section may be absent."""

    rules: tuple[RuleSpec, ...] = ()
    components: tuple[ComponentSpec, ...] = ()
    channels: tuple[ChannelSpec, ...] = ()
    escalation_policies: tuple[EscalationPolicySpec, ...] = ()
