r"""Alertmanager label matchers: ``name OP value`` selectors with Alertmanager's semantics.

SRE-editable rules use the same matcher syntax and meaning as Alertmanager routes, silences and
``amtool``, so a matcher can be pasted from amtool or a silence and behave the same here:

* operators ``=`` ``!=`` ``=~`` ``!~``; regexes are fully anchored, like ``^(?:pat)$``;
* a missing label counts as ``""``, so ``env!="prod"`` matches alerts without ``env``;
* lists are ANDed, ``{a="b", c=~"d|e",}`` braces are optional and one trailing comma is allowed;
* values may be unquoted or double-quoted with Go-style escapes; names may be double-quoted so
  UTF-8 label names work.

Quoted strings decode ``\"`` ``\\`` ``\n`` ``\t``. Any other backslash is kept as written, as
Alertmanager's default (fallback) parser does, so ``"\d+"`` and ``"\.shop"`` stay valid regexes.
Regexes use Python's ``re`` rather than RE2; the common subset (alternation, classes, repetition)
behaves the same. The module is pure: no I/O and only the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["MatchOp", "Matcher", "MatcherError", "matches_all", "parse_matcher", "parse_matchers"]

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_RUN = re.compile(r"[^\s=!~,{}\"]*")  # what the user meant as a name, valid or not
_OP_RUN = re.compile(r"[=!~]*")  # greedy so typos like "==" are reported rather than misread
_UNQUOTED_VALUE = re.compile(r"[^,}]*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_OPERATORS = "= != =~ !~"


class MatchOp(StrEnum):
    """Matcher operator, spelled as in Alertmanager."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class MatcherError(ValueError):
    """A matcher does not parse; the message is a bare reason for ``file:line: field: reason``."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; regexes are compiled on construction so bad ones fail at load time."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Coerce plain strings such as "=~" so the identity checks below hold.
        object.__setattr__(self, "op", MatchOp(self.op))
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            object.__setattr__(self, "_regex", _compile(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether ``labels`` satisfy this matcher; a missing label is ``""``."""
        actual = labels.get(self.name, "")
        if self._regex is not None:
            # fullmatch anchors both ends, even with a leading (?i), unlike "^(?:" + pat + ")$".
            hit = self._regex.fullmatch(actual) is not None
        else:
            hit = actual == self.value
        return hit if self.op in (MatchOp.EQUAL, MatchOp.REGEX) else not hit

    def __str__(self) -> str:
        """Render as ``name<op>"value"``, which parses back to an equal matcher."""
        name = self.name if _LABEL_NAME.fullmatch(self.name) else _quote(self.name)
        return f"{name}{self.op}{_quote(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """Parse a single matcher such as ``severity=~"page|critical"`` or ``env!=prod``."""
    if not text.strip():
        raise MatcherError("empty matcher")
    if text.strip().startswith("{"):
        raise MatcherError("unexpected opening brace: write one matcher without { }")
    matcher, pos = _parse_one(text, 0)
    pos = _skip_space(text, pos)
    if pos < len(text):
        raise MatcherError(f"unexpected text {_snippet(text, pos)} after matcher")
    return matcher


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse a selector such as ``{alertname="X", severity=~"page|critical",}``.

    Braces are optional, one trailing comma is allowed and ``{}`` (or ``""``) selects everything.
    """
    pos = _skip_space(text, 0)
    braced = text.startswith("{", pos)
    pos = _skip_space(text, pos + 1) if braced else pos
    found: list[Matcher] = []
    while pos < len(text) and text[pos] != "}":
        if text[pos] == ",":
            raise MatcherError("empty matcher")
        matcher, pos = _parse_one(text, pos)
        found.append(matcher)
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif pos < len(text) and text[pos] != "}":
            raise MatcherError(f"unexpected text {_snippet(text, pos)} after matcher")
    if braced and not text.startswith("}", pos):
        raise MatcherError('missing closing "}"')
    if not braced and pos < len(text):
        raise MatcherError('unexpected "}" without opening "{"')
    pos = _skip_space(text, pos + 1) if braced else pos
    if pos < len(text):
        raise MatcherError(f'unexpected text {_snippet(text, pos)} after closing "}}"')
    return tuple(found)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """AND the matchers like Alertmanager does; no matchers match every label set."""
    return all(matcher.matches(labels) for matcher in matchers)


def _parse_one(text: str, pos: int) -> tuple[Matcher, int]:
    """Parse ``name OP value`` starting at ``pos``; return it and the position after the value."""
    name, pos = _parse_name(text, _skip_space(text, pos))
    pos = _skip_space(text, pos)
    op_text = _run(_OP_RUN, text, pos)
    if not op_text:
        raise MatcherError(f"expected one of {_OPERATORS} after label name {_quote(name)}")
    try:
        op = MatchOp(op_text)
    except ValueError:
        raise MatcherError(
            f"unknown operator {_quote(op_text)} after label name {_quote(name)}, "
            f"expected one of {_OPERATORS}"
        ) from None
    value, pos = _parse_value(text, _skip_space(text, pos + len(op_text)))
    return Matcher(name, op, value), pos


def _parse_name(text: str, pos: int) -> tuple[str, int]:
    """Read an unquoted Prometheus label name or a double-quoted UTF-8 one."""
    if text.startswith('"', pos):
        name, end = _read_quoted(text, pos, "label name")
        if not name:
            raise MatcherError("empty label name")
        return name, end
    run = _run(_NAME_RUN, text, pos)
    if not run:
        found = _snippet(text, pos) if pos < len(text) else "end of input"
        raise MatcherError(f"expected label name, found {found}")
    if not _LABEL_NAME.fullmatch(run):
        raise MatcherError(
            f"invalid label name {_quote(run)}: use [A-Za-z_][A-Za-z0-9_]* or double-quote it"
        )
    return run, pos + len(run)


def _parse_value(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted value, or an unquoted one that runs to ``,``, ``}`` or the end."""
    if text.startswith('"', pos):
        return _read_quoted(text, pos, "value")
    raw = _run(_UNQUOTED_VALUE, text, pos)
    value = raw.strip()
    if '"' in value:
        raise MatcherError(f"unquoted value {_quote(value)} contains a double quote")
    if any(ch.isspace() for ch in value):
        raise MatcherError(f"unquoted value {_quote(value)} contains whitespace; quote it")
    return value, pos + len(raw)


def _read_quoted(text: str, pos: int, what: str) -> tuple[str, int]:
    """Decode the Go-style string whose opening quote is at ``pos``."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            # Unknown escapes stay literal so regex escapes like \d survive.
            out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise MatcherError(f"unterminated quoted {what}")


def _compile(pattern: str) -> re.Pattern[str]:
    """Compile a matcher regex, turning failures into a MatcherError naming the pattern."""
    try:
        return re.compile(pattern)
    except (re.error, OverflowError) as exc:
        raise MatcherError(f"invalid regex {_quote(pattern)}: {exc}") from exc


def _quote(text: str) -> str:
    """Double-quote ``text`` with exactly the escapes ``_read_quoted`` decodes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'


def _run(pattern: re.Pattern[str], text: str, pos: int) -> str:
    """Return the (possibly empty) stretch of ``text`` at ``pos`` that ``pattern`` covers."""
    found = pattern.match(text, pos)
    return found.group() if found else ""


def _snippet(text: str, pos: int, width: int = 20) -> str:
    """Quote the start of the unparsed rest of ``text`` for error messages."""
    rest = text[pos:]
    return _quote(rest if len(rest) <= width else rest[:width] + "...")


def _skip_space(text: str, pos: int) -> int:
    """Return the first position at or after ``pos`` that is not whitespace."""
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos
