"""Prometheus-style durations (``90s``, ``5m``, ``1h30m``) used in rule files and settings."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m`` style text; raise ValueError with a reason SREs recognise."""
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    pos = 0
    seconds = 0.0
    for part in _PART.finditer(value):
        if part.start() != pos:
            break
        seconds += int(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    if pos != len(value):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, like 30s, 5m or 1h30m"
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a timedelta the way it would be written in a rule file."""
    total = round(delta.total_seconds() * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _coerce(value: object) -> object:
    """Accept ``30s``/``5m`` text as well as plain seconds."""
    if isinstance(value, str):
        text = value.strip()
        if text.replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text))
        return parse_duration(text)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w))+$", "examples": ["5m"]}),
]
"""A timedelta written as ``5m`` in files and environment variables."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s: a zero window can never fire")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A Duration that must be longer than zero (windows, intervals, timeouts)."""
