"""Title and summary templates: ``{{ labels.cluster }}`` and ``{{ annotations.summary }}``.

Deliberately tiny: a rule's text can only read alert labels and annotations, so a template can
never fail at 3 a.m. A reference to a missing label renders as an empty string, as in Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"{{\s*(.*?)\s*}}")
_REFERENCE = re.compile(r"\$?(labels|annotations)\.([A-Za-z_][A-Za-z0-9_]*)")


def check_template(text: str) -> str:
    """Return ``text`` unchanged, or raise ValueError naming the first bad placeholder."""
    for placeholder in _PLACEHOLDER.finditer(text):
        if not _REFERENCE.fullmatch(placeholder.group(1)):
            raise ValueError(
                f"unknown placeholder {placeholder.group(0)!r}: use "
                "{{ labels.NAME }} or {{ annotations.NAME }}"
            )
    if text.count("{{") != len(_PLACEHOLDER.findall(text)):
        raise ValueError("unclosed '{{' in template")
    return text


def render(text: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
    """Fill placeholders from an alert's labels and annotations."""

    def value(match: re.Match[str]) -> str:
        reference = _REFERENCE.fullmatch(match.group(1))
        if reference is None:
            return match.group(0)
        source = labels if reference.group(1) == "labels" else annotations
        return source.get(reference.group(2), "")

    return _PLACEHOLDER.sub(value, text)
