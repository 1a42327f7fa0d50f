"""The JSON paths journeys extract and assert on: ``$.items[0].id``, ``$["order-id"]``.

The subset every probe tool agrees on (Gatus ``[BODY].a[0]``, Checkly, Grafana's JSON_PATH
variables): member names and list indexes from the root, no filters or wildcards, so a path names
exactly one value or none.
"""

from __future__ import annotations

import json
import re
from typing import Any

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]")
MISSING = object()
"""What ``lookup`` returns for a path that names nothing in the document."""


def parse_path(text: str) -> tuple[str | int, ...]:
    """The steps of a path, or ValueError saying what is wrong with it."""
    if not text.startswith("$"):
        raise ValueError(f"JSON path {text!r} must start with $ (like $.items[0].id)")
    steps: list[str | int] = []
    position = 1
    while position < len(text):
        found = _STEP.match(text, position)
        if found is None:
            raise ValueError(
                f'JSON path {text!r}: cannot read {text[position:]!r}; use .name, [0] or ["name"]'
            )
        name, index, quoted = found.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else json.loads(f'"{quoted}"'))
        position = found.end()
    return tuple(steps)


def check_path(text: str) -> str:
    """Return ``text`` unchanged if it is a path this module reads."""
    parse_path(text)
    return text


def lookup(document: Any, path: str) -> Any:
    """The value at ``path`` in a parsed JSON document, or MISSING."""
    value = document
    for step in parse_path(path):
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return MISSING
            value = value[step]
        elif not isinstance(value, dict) or step not in value:
            return MISSING
        else:
            value = value[step]
    return value
