"""Render validation locations the way people read them: ``rules[0].match[1]``."""

from __future__ import annotations

from collections.abc import Sequence


def field_path(path: Sequence[str | int]) -> str:
    """Render ``('rules', 0, 'match', 1)`` as ``rules[0].match[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
