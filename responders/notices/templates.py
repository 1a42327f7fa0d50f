"""Notice templates: Jinja2 in the sandboxed environment, one file per notice kind.

A rules directory may hold a ``notices/`` folder with any of ``first_notice.j2``, ``update.j2``,
``holding_update.j2``, ``resolution.j2`` and ``postmortem.j2``; a kind without its own file uses
the shipped default next to this module. The sandbox and ``StrictUndefined`` keep a template
from reaching into Python or silently printing nothing for a misspelt name.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from responders.notices.model import NoticeKind, NoticeValues

DEFAULTS = Path(__file__).parent / "defaults"
FOLDER = "notices"
"""The folder of a rules directory that overrides the shipped templates."""

_ENVIRONMENT = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=False
)


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """A template that cannot be used, at ``file:line``."""

    file: str
    line: int
    reason: str


Problems = list[TemplateProblem]


@functools.lru_cache(maxsize=64)
def compiled(source: str) -> jinja2.Template:
    """``source`` compiled in the sandbox (once per text; raises TemplateSyntaxError)."""
    return _ENVIRONMENT.from_string(source)


@dataclass(frozen=True, slots=True)
class NoticeTemplate:
    """One template and where it came from (for ``file:line`` in problems). Only text is kept,
    so a rule set pickles (the engine process hands its rules to the service)."""

    kind: NoticeKind
    file: str
    source: str

    def render(self, values: NoticeValues) -> str:
        """The notice text: blank lines squeezed, surrounding space removed."""
        text = compiled(self.source).render(values.as_template_vars())
        return "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())


@dataclass(frozen=True, slots=True)
class NoticeTemplates:
    """The five templates in effect for a rules directory."""

    by_kind: Mapping[NoticeKind, NoticeTemplate]

    def render(self, kind: NoticeKind, values: NoticeValues) -> str:
        """Write the notice ``kind`` with ``values``."""
        return self.by_kind[kind].render(values)


def load_templates(rules_directory: Path | None) -> tuple[NoticeTemplates, Problems]:
    """The templates of ``rules_directory`` (shipped defaults where it has none) and the
    problems that keep some from compiling (those are missing; use the set only without
    problems)."""
    folder = None if rules_directory is None else rules_directory / FOLDER
    templates: dict[NoticeKind, NoticeTemplate] = {}
    problems: list[TemplateProblem] = []
    for kind in NoticeKind:
        path = DEFAULTS / kind.template_file
        if folder is not None and (folder / kind.template_file).is_file():
            path = folder / kind.template_file
        try:
            source = path.read_text(encoding="utf-8")
            compiled(source)
            templates[kind] = NoticeTemplate(kind, str(path), source)
        except jinja2.TemplateSyntaxError as err:
            problems.append(
                TemplateProblem(str(path), err.lineno, f"template syntax: {err.message}")
            )
        except (OSError, UnicodeDecodeError) as err:
            problems.append(TemplateProblem(str(path), 1, f"cannot read template: {err}"))
    if folder is not None and folder.is_dir():
        known = {kind.template_file for kind in NoticeKind}
        for extra in sorted(folder.glob("*.j2")):
            if extra.name not in known:
                problems.append(
                    TemplateProblem(
                        str(extra),
                        1,
                        f"unknown notice template (use one of {', '.join(sorted(known))})",
                    )
                )
    return NoticeTemplates(templates), problems


@functools.cache
def default_templates() -> NoticeTemplates:
    """The shipped templates (used where no rules directory says otherwise)."""
    templates, problems = load_templates(None)
    if problems:
        raise RuntimeError(f"shipped notice templates are broken: {problems}")
    return templates
