"""``rules check`` for customer text: the notice templates compile, render with sample values,
and say what a first notice must say; no rule's customer words or rendered notice carries
internal jargon. Every finding is ``file:line: field: reason``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from detector.domain.fieldpath import field_path
from detector.ruleset.matchers import MatchOp
from detector.ruleset.notice_rules import NoticePolicySpec
from detector.ruleset.positions import RuleError
from responders.notices.lint import Vocabulary, check_templates, jargon
from responders.notices.templates import NoticeTemplates, load_templates

if TYPE_CHECKING:
    from detector.ruleset.loader import LoadedFile

_LITERALS = re.compile(r"[A-Za-z][A-Za-z0-9_:]{2,}")
CUSTOMER_FIELDS = ("title", "impact", "still_works")


def notice_policy(files: Sequence[LoadedFile]) -> tuple[NoticePolicySpec, list[RuleError]]:
    """The directory's one ``notices:`` section (defaults when none), or an error per extra."""
    found = [item for item in files if item.content.notices is not None]
    errors = [
        RuleError(
            item.name,
            item.document.line_of(("notices",)),
            "notices",
            f"only one file may hold the notices section (first in {found[0].name})",
        )
        for item in found[1:]
    ]
    first = found[0].content.notices if found else None
    return first or NoticePolicySpec(), errors


def vocabulary(files: Iterable[LoadedFile], policy: NoticePolicySpec) -> Vocabulary:
    """The shop's jargon list plus the alert names and underscored label names its rules use."""
    names: set[str] = set()
    for item in files:
        for rule in item.content.rules:
            for matcher in (*rule.match, *(m for selector in rule.all_of or () for m in selector)):
                if matcher.name == "alertname" and matcher.op in (MatchOp.EQUAL, MatchOp.REGEX):
                    names.update(_LITERALS.findall(matcher.value))
                if "_" in matcher.name:
                    names.add(matcher.name)
            names.update(label for label in rule.group_by if "_" in label)
    return Vocabulary(words=policy.jargon, internal_names=frozenset(names))


def check_notices(
    directory: Path, files: Sequence[LoadedFile]
) -> tuple[NoticePolicySpec, NoticeTemplates | None, list[RuleError]]:
    """The directory's notice policy and templates, with every problem found in them."""
    policy, errors = notice_policy(files)
    words = vocabulary(files, policy)
    errors.extend(_rule_text_errors(files, words))
    templates, compile_problems = load_templates(directory)
    problems = [*compile_problems, *check_templates(templates, words)]
    errors.extend(RuleError(p.file, p.line, "", p.reason) for p in problems)
    for item in files:
        for index, rule in enumerate(item.content.rules):
            if rule.notice is not None and rule.component is None:
                path = ("rules", index, "notice")
                errors.append(
                    RuleError(
                        item.name,
                        item.document.line_of(path),
                        field_path(path),
                        "a public notice needs the rule's component (what customers see affected)",
                    )
                )
    return policy, (None if problems else templates), errors


def _rule_text_errors(files: Iterable[LoadedFile], words: Vocabulary) -> Iterator[RuleError]:
    for item in files:
        for index, rule in enumerate(item.content.rules):
            if rule.notice is None:
                continue
            for name in CUSTOMER_FIELDS:
                found = jargon(getattr(rule.notice, name), words)
                if found:
                    path = ("rules", index, "notice", name)
                    yield RuleError(
                        item.name,
                        item.document.line_of(path),
                        field_path(path),
                        f"internal jargon: {', '.join(found)}",
                    )
