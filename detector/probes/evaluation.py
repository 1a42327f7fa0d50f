"""The pure half of a step: given the answer, which values it yields and whether it passes.

Order matters for the one reason a failed step gets: a wrong status first (``http_status``: the
body of an error page says little), then the other assertions (``assertion``), then the values
later steps need (``extraction``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.probes.journey import AssertSpec, ExtractSpec, ProbeStepSpec
from detector.probes.jsonpath import MISSING, lookup
from detector.probes.outcome import FailureReason, Response
from detector.probes.redaction import is_secret_name

_NOT_JSON = object()


@dataclass(frozen=True, slots=True)
class Verdict:
    """A step's checks: the failure (reason and what was wrong) or none, and the values read."""

    reason: FailureReason | None = None
    detail: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)


def evaluate(step: ProbeStepSpec, response: Response) -> Verdict:
    """Check one answer against the step's assertions and extract its values."""
    document = _json(response.body)
    status_checks = [check for check in step.assertions if check.status is not None]
    if not status_checks and response.status >= 400:
        return Verdict(FailureReason.HTTP_STATUS, f"status {response.status}")
    for check in status_checks:
        if response.status not in check.statuses:
            wanted = " or ".join(str(code) for code in check.statuses)
            return Verdict(FailureReason.HTTP_STATUS, f"status {response.status}, want {wanted}")
    for check in step.assertions:
        problem = _failed(check, response, document)
        if problem is not None:
            return Verdict(FailureReason.ASSERTION, problem)
    values: dict[str, Any] = {}
    for name, spec in step.extract.items():
        value = extract(spec, response, document)
        if value is MISSING:
            return Verdict(FailureReason.EXTRACTION, f"{name}: {_source(spec)} found nothing")
        values[name] = value
    return Verdict(values=values)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _failed(check: AssertSpec, response: Response, document: Any) -> str | None:
    """What is wrong, or None when the check holds (status checks are done before)."""
    if check.latency_below is not None:
        limit = check.latency_below.total_seconds()
        if response.latency_s >= limit:
            return f"latency {response.latency_s:.3f}s, want below {limit:g}s"
        return None
    if check.json_path is not None:
        value = MISSING if document is _NOT_JSON else lookup(document, check.json_path)
        return _compare(check, check.json_path, value)
    if check.header is not None:
        header = response.headers.get(check.header)
        return _compare(check, f"header {check.header}", MISSING if header is None else header)
    if check.body:
        return _compare(check, "body", response.body.decode("utf-8", errors="replace"))
    return None


def _compare(check: AssertSpec, subject: str, value: Any) -> str | None:
    fields = check.model_fields_set
    if "exists" in fields:
        found = value is not MISSING
        return None if found == check.exists else f"{subject}: exists is {str(found).lower()}"
    if value is MISSING:
        return f"{subject}: not found"
    if "equals" in fields:
        return _unequal(check, subject, value)
    text = value if isinstance(value, str) else json.dumps(value)
    if check.contains is not None and check.contains not in text:
        return f"{subject}: does not contain {check.contains!r}"
    return None


def _unequal(check: AssertSpec, subject: str, value: Any) -> str | None:
    if value == check.equals or _same_number(value, check.equals):
        return None
    if is_secret_name(subject):  # the value of a token is no evidence to show people
        return f"{subject}: not the expected value"
    return f"{subject}: {_short(value)}, want {_short(check.equals)}"


def _same_number(value: Any, expected: Any) -> bool:
    """``equals: "42"`` for a JSON number 42 (YAML quoting should not decide a check)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and str(value) == expected


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def extract(spec: ExtractSpec, response: Response, document: Any) -> Any:
    """One value from the answer, or MISSING."""
    if spec.json_path is not None:
        return MISSING if document is _NOT_JSON else lookup(document, spec.json_path)
    if spec.regex is not None:
        found = re.search(spec.regex, response.body.decode("utf-8", errors="replace"))
        if found is None:
            return MISSING
        return found.group(1) if found.re.groups else found.group(0)
    if spec.header is not None:
        return response.headers.get(spec.header, MISSING)
    return response.cookies.get(spec.cookie or "", MISSING)


def _source(spec: ExtractSpec) -> str:
    if spec.json_path is not None:
        return f"JSON path {spec.json_path}"
    if spec.regex is not None:
        return f"regex {spec.regex!r}"
    return f"header {spec.header}" if spec.header is not None else f"cookie {spec.cookie}"
