"""Values in journey requests: ``{{ steps.cart.cart_id }}``, ``{{ vars.sku }}``, ``{{ run.id }}``.

Jinja2's sandbox renders them, with undefined names an error rather than an empty string: a
request built from a value that is not there would test nothing. The same parse tells
``rules check`` which values a template reads, so a reference to a value no earlier step extracts
is caught before the journey ever runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOTS = ("steps", "vars", "run")
"""The names a template may read: extracted values by step, the journey's variables, the run."""
RUN_FIELDS = ("id", "location", "journey")

_ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@dataclass(frozen=True, slots=True)
class Reference:
    """One value a template reads: ``root.name`` or ``steps.step.name``."""

    root: str
    name: str
    step: str = ""

    def __str__(self) -> str:
        return (
            f"steps.{self.step}.{self.name}" if self.root == "steps" else f"{self.root}.{self.name}"
        )


def check_syntax(text: str) -> str:
    """Return ``text`` unchanged, or raise ValueError with Jinja2's reason."""
    try:
        _ENVIRONMENT.parse(text)
    except TemplateSyntaxError as err:
        raise ValueError(f"invalid template: {err.message}") from None
    return text


def references(text: str) -> Iterator[Reference | str]:
    """What ``text`` reads: a Reference per value, or the problem with a name it cannot read."""
    tree = _ENVIRONMENT.parse(text)
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in ROOTS:
            yield f"unknown name {name.name!r} (use {', '.join(ROOTS)})"
    for attribute in tree.find_all(nodes.Getattr):
        inner = attribute.node
        if isinstance(inner, nodes.Name) and inner.name in ("vars", "run"):
            yield Reference(inner.name, attribute.attr)
        elif (
            isinstance(inner, nodes.Getattr)
            and isinstance(inner.node, nodes.Name)
            and inner.node.name == "steps"
        ):
            yield Reference("steps", attribute.attr, inner.attr)


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Any:
    return _ENVIRONMENT.from_string(text)


def render(text: str, context: Mapping[str, Any]) -> str:
    """Fill a template from the run's context; raise ValueError when a value is missing."""
    if "{" not in text:
        return text
    try:
        return str(_compiled(text).render(context))
    except Exception as err:  # sandbox violations, undefined values, filters that fail
        raise ValueError(f"template {text!r}: {err}") from None


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """A JSON body with every string in it rendered; other values as they are."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    return value


def strings_of(value: Any) -> Iterator[str]:
    """Every string in a JSON body, to check what it references."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_of(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_of(item)
