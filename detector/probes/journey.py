"""The ``journeys:`` section of rule files: ordered HTTP steps that walk through the shop as a
customer would, what each step extracts and asserts, and when failing runs count.

Strict like every section (an unknown key, such as a misspelt assertion, is an error). What spans
steps (a template reading a value no earlier step extracts) is checked by ``journey_problems``,
which the rules loader reports with ``file:line`` like its other cross-checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from detector.domain.durations import PositiveDuration
from detector.probes.jsonpath import check_path
from detector.probes.templating import RUN_FIELDS, Reference, check_syntax, references, strings_of
from detector.ruleset.channel_specs import Name, Strict

StepName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=60)]
"""A step's name is read in templates (``steps.NAME.value``), so it is an identifier."""
ValueName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=60)]
Template = Annotated[str, AfterValidator(check_syntax)]
JsonPath = Annotated[str, AfterValidator(check_path)]
LabelValue = Annotated[str, Field(max_length=200)]

SYNTHETIC_HEADER = "X-Stormwatch-Synthetic"
"""Sent with every request, so the shop can route the run to a sandbox payment path and keep it
out of its sales figures."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""``<run id>:<step>``: the same for a retry of a step, different for every other request."""
RESERVED_LABELS = frozenset({"journey", "location", "instance"})


class Method(StrEnum):
    """HTTP methods a step may send."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"


class ExtractSpec(Strict):
    """Where a value comes from in a step's response: exactly one source."""

    model_config = ConfigDict(populate_by_name=True)

    json_path: JsonPath | None = Field(default=None, alias="json")
    regex: str | None = None
    header: str | None = None
    cookie: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ExtractSpec:
        given = [name for name in ("json_path", "regex", "header", "cookie") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of json, regex, header, cookie")
        if self.regex is not None:
            _compile(self.regex)
        return self


def _compile(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"invalid regex: {err}") from None


class AssertSpec(Strict):
    """One thing a step's response must satisfy.

    A subject (``status``, ``latency_below``, ``json``, ``header``, ``body``), and for ``json``,
    ``header`` and ``body`` one comparison (``equals``, ``contains``, ``exists``).
    """

    model_config = ConfigDict(populate_by_name=True)

    status: int | tuple[int, ...] | None = None
    latency_below: PositiveDuration | None = None
    json_path: JsonPath | None = Field(default=None, alias="json")
    header: str | None = None
    body: bool | None = None
    equals: Any = None
    contains: str | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_check(self) -> AssertSpec:
        subjects = [
            name
            for name in ("status", "latency_below", "json_path", "header", "body")
            if getattr(self, name) is not None
        ]
        subjects = [name.replace("json_path", "json") for name in subjects]
        if len(subjects) != 1:
            raise ValueError("give exactly one of status, latency_below, json, header, body")
        comparisons = [
            name for name in ("equals", "contains", "exists") if name in self.model_fields_set
        ]
        if subjects[0] in ("status", "latency_below"):
            if comparisons:
                raise ValueError(f"{subjects[0]} takes no {comparisons[0]}")
        elif len(comparisons) != 1:
            raise ValueError(f"{subjects[0]} needs exactly one of equals, contains, exists")
        if self.body is False:
            raise ValueError("body: write `body: true` with contains or equals")
        if self.body and self.exists is not None:
            raise ValueError("body takes contains or equals")
        return self

    @property
    def statuses(self) -> tuple[int, ...]:
        """The accepted status codes of a ``status`` assertion."""
        return self.status if isinstance(self.status, tuple) else (self.status or 0,)


class ProbeStepSpec(Strict):
    """One request of a journey, with what it extracts and asserts."""

    model_config = ConfigDict(populate_by_name=True)

    name: StepName
    method: Method = Method.GET
    url: Annotated[Template, Field(pattern=r"^(https?://|\{\{)")]
    headers: dict[str, Template] = Field(default_factory=dict)
    body: Template | None = None
    json_body: Any = Field(default=None, alias="json")
    timeout: PositiveDuration | None = None
    retries: int | None = Field(default=None, ge=0, le=5)
    extract: dict[ValueName, ExtractSpec] = Field(default_factory=dict)
    assertions: tuple[AssertSpec, ...] = Field(default=(), alias="assert")
    always_run: bool = False
    """A cleanup step: runs even after an earlier step failed (cancel the test order)."""

    @model_validator(mode="after")
    def _one_body(self) -> ProbeStepSpec:
        if self.body is not None and self.json_body is not None:
            raise ValueError("give body or json, not both")
        for text in strings_of(self.json_body):
            check_syntax(text)
        return self


class JourneySpec(Strict):
    """A journey: its steps, schedule, and how many failed runs make it fail."""

    name: Name
    description: str = ""
    enabled: bool = True
    interval: PositiveDuration = timedelta(minutes=1)
    timeout: PositiveDuration = timedelta(seconds=30)
    step_timeout: PositiveDuration = timedelta(seconds=10)
    retries: int = Field(default=1, ge=0, le=5)
    """In-run retries of a step that failed on dns, connect, timeout or a 502/503/504."""
    retry_delay: PositiveDuration = timedelta(seconds=1)
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive failed runs (from one location) before the journey fires there."""
    success_threshold: int = Field(default=2, ge=1, le=100)
    """Consecutive successful runs before a firing journey resolves there."""
    labels: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], LabelValue] = Field(
        default_factory=dict
    )
    """Added to the journey's signals (``severity``, ``cluster``), for rules to match."""
    vars: dict[ValueName, str] = Field(default_factory=dict)
    steps: tuple[ProbeStepSpec, ...] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _consistent(self) -> JourneySpec:
        reserved = sorted(RESERVED_LABELS & set(self.labels))
        if reserved:
            raise ValueError(f"labels: {', '.join(reserved)} are set by the prober")
        if self.interval < self.timeout:
            raise ValueError(
                "interval must not be shorter than timeout: runs would overlap and the "
                "journey would run less often than its interval says"
            )
        return self

    def step_timeout_of(self, step: ProbeStepSpec) -> timedelta:
        """A step's own timeout, or the journey's."""
        return step.timeout or self.step_timeout

    def retries_of(self, step: ProbeStepSpec) -> int:
        """A step's own retry count, or the journey's."""
        return self.retries if step.retries is None else step.retries


Problem = tuple[tuple[str | int, ...], str]
"""A path inside one journey (``("steps", 2, "url")``) and what is wrong there."""


def journey_problems(journey: JourneySpec) -> Iterator[Problem]:
    """What spans steps: templates reading values no earlier step extracts, duplicate steps,
    step timeouts longer than the journey's."""
    extracted: dict[str, set[str]] = {}
    for index, step in enumerate(journey.steps):
        where: tuple[str | int, ...] = ("steps", index)
        if step.name in extracted:
            yield (*where, "name"), f"duplicate step name {step.name!r}"
        if journey.step_timeout_of(step) > journey.timeout:
            yield (*where, "timeout"), "a step timeout must not be longer than the journey's"
        for field, text in _templates(step):
            for reference in references(text):
                problem = _unresolved(reference, journey, extracted)
                if problem is not None:
                    yield (*where, *field), problem
        extracted[step.name] = set(step.extract)


def _templates(step: ProbeStepSpec) -> Iterator[tuple[tuple[str, ...], str]]:
    yield ("url",), step.url
    for name, value in step.headers.items():
        yield ("headers", name), value
    if step.body is not None:
        yield ("body",), step.body
    for text in strings_of(step.json_body):
        yield ("json",), text


def _unresolved(
    reference: Reference | str, journey: JourneySpec, extracted: dict[str, set[str]]
) -> str | None:
    if isinstance(reference, str):
        return reference
    if reference.root == "vars":
        return None if reference.name in journey.vars else f"unknown variable {reference}"
    if reference.root == "run":
        return None if reference.name in RUN_FIELDS else f"unknown run field {reference}"
    if reference.step not in extracted:
        return f"{reference}: no earlier step is named {reference.step!r}"
    if reference.name not in extracted[reference.step]:
        return f"{reference}: step {reference.step!r} extracts no {reference.name!r}"
    return None
