"""Keep customer text plain: what a notice must say, and internal words it must not.

A customer reads "checkout is failing; your cart is kept", never a hostname, an IP address, a
metric or label name, a stack trace or a word the shop lists as jargon ("PgBouncer", "5xx").
Templates are checked by rendering them with sample values, so a lint finding is about text a
customer would really read.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from responders.notices.model import NoticeKind, NoticeValues
from responders.notices.templates import NoticeTemplate, NoticeTemplates, TemplateProblem
from responders.statuspage.model import IncidentStatus

_HOSTNAME = re.compile(
    r"(?<![@/\w.])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
    r"(?:internal|local|lan|corp|svc|cluster|intra|private|priv|prod|staging|com|net|org|io)\b",
    re.IGNORECASE,
)
_NUMBERED_HOST = re.compile(r"(?<![\w-])[a-z]+(?:-[a-z0-9]+)*-\d+[a-z]?(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])", re.IGNORECASE)
_SNAKE = re.compile(r"(?<![\w.])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w])")
_STACK = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"
    r"|\bat [\w$.]+\([\w.]*:\d+\)|\b[A-Z]\w*(?:Error|Exception)\b"
)
PROMETHEUS_LABELS = frozenset({"alertname", "namespace", "pod"})
"""Label names every Prometheus setup has that are no everyday words (``job`` and ``instance``
are, so they are left to the shop's jargon list)."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What counts as internal: the shop's jargon list and the names its rules use (alert and
    label names), besides the shapes every setup shares (hostnames, addresses, traces)."""

    words: tuple[str, ...] = ()
    internal_names: frozenset[str] = frozenset()


def jargon(text: str, vocabulary: Vocabulary) -> list[str]:
    """The internal words in ``text``, in order of first appearance, each once."""
    found: list[str] = []
    for word in _findings(text, vocabulary):
        if not any(word in earlier for earlier in found):
            found.append(word)
    return found


def _findings(text: str, vocabulary: Vocabulary) -> Iterator[str]:
    for pattern in (_STACK, _IPV4, _HOSTNAME, _NUMBERED_HOST, _SNAKE):
        yield from (match.group(0) for match in pattern.finditer(text))
    for match in _IPV6.finditer(text):
        candidate = match.group(0)
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield candidate
    for word in vocabulary.words:
        pattern = re.compile(rf"(?<![\w]){re.escape(word)}(?![\w])", re.IGNORECASE)
        yield from (match.group(0) for match in pattern.finditer(text))
    for name in (*vocabulary.internal_names, *PROMETHEUS_LABELS):
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
            yield name


SAMPLE_COMPONENTS = ("Checkout", "Payments")
SAMPLE_NEXT_UPDATE = "14:30 CET"


def sample_values(kind: NoticeKind) -> NoticeValues:
    """Plausible values for ``kind``, so ``rules check`` reads what a customer would."""
    status = {
        NoticeKind.RESOLUTION: IncidentStatus.RESOLVED,
        NoticeKind.POSTMORTEM: IncidentStatus.POSTMORTEM,
        NoticeKind.UPDATE: IncidentStatus.IDENTIFIED,
    }.get(kind, IncidentStatus.INVESTIGATING)
    final = status.is_final
    return NoticeValues(
        components=SAMPLE_COMPONENTS,
        status=status,
        started_at="13:55 CET",
        impact="Some customers cannot complete their order.",
        still_works="Your cart is kept and no card is charged twice.",
        message="We are moving orders to a second payment route.",
        next_update_at=None if final else SAMPLE_NEXT_UPDATE,
        eta="15:00 CET",
        resolved_at="14:40 CET" if final else None,
        postmortem={
            "impact": "About one order in ten failed for 45 minutes.",
            "customer_action": "Nothing; failed orders were not charged.",
            "compensation": "A 10% voucher by email.",
            "prevention": "A second payment route that takes over on its own.",
        },
    )


def check_templates(templates: NoticeTemplates, vocabulary: Vocabulary) -> list[TemplateProblem]:
    """Render every template with sample values and report what a customer should not read,
    and a first notice that does not say what is affected or when the next update comes."""
    problems: list[TemplateProblem] = []
    for kind, template in templates.by_kind.items():
        problems.extend(_check_one(kind, template, vocabulary))
    return problems


def _check_one(
    kind: NoticeKind, template: NoticeTemplate, vocabulary: Vocabulary
) -> Iterator[TemplateProblem]:
    values = sample_values(kind)
    try:
        text = template.render(values)
    except Exception as err:  # a sandbox violation or an undefined name, at render time
        yield TemplateProblem(template.file, _line_of_error(err, template), f"cannot render: {err}")
        return
    if kind is NoticeKind.FIRST_NOTICE:
        if not any(name in text for name in values.components):
            yield TemplateProblem(
                template.file, 1, "a first notice must say what is affected ({{ component_list }})"
            )
        if SAMPLE_NEXT_UPDATE not in text:
            yield TemplateProblem(
                template.file,
                1,
                "a first notice must say when the next update comes ({{ next_update_at }})",
            )
    words = jargon(text, vocabulary)
    for line, on_line in _lines_of(words, template.source):
        yield TemplateProblem(template.file, line, f"internal jargon: {', '.join(on_line)}")


def _lines_of(words: Iterable[str], source: str) -> list[tuple[int, list[str]]]:
    """Group words by the first template line that holds them (line 1 if none does)."""
    lines = source.splitlines()
    grouped: dict[int, list[str]] = {}
    for word in words:
        line = next(
            (number for number, text in enumerate(lines, 1) if word.lower() in text.lower()), 1
        )
        grouped.setdefault(line, []).append(word)
    return sorted(grouped.items())


def _line_of_error(err: Exception, template: NoticeTemplate) -> int:
    traceback = err.__traceback__
    line = 1
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
