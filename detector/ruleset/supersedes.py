"""Reference checks of the rules' ``supersedes:``: names that resolve, no rule superseding
itself (directly or around a cycle, which would leave every incident of the cycle silent), and
``equal`` labels that both rules group by (another label is not in the incidents' group labels,
so it would always compare empty against empty and match every group)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from detector.ruleset.rules import ALL_LABELS
from detector.ruleset.schema import RuleSpec

Problem = tuple[tuple[str | int, ...], str]
"""Where in the rule's ``supersedes`` (a field path below it) and why."""


def supersedes_problems(rule: RuleSpec, rules: Mapping[str, RuleSpec]) -> Iterator[Problem]:
    """What is wrong with ``rule.supersedes``, given every rule of the directory."""
    spec = rule.supersedes
    if spec is None:
        return
    for index, name in enumerate(spec.rules):
        where = ("rules", index)
        if name == rule.name:
            yield where, "a rule cannot supersede itself"
        elif name not in rules:
            yield where, f"unknown rule {name!r}"
        else:
            cycle = _path(name, rule.name, rules)
            if cycle is not None:
                chain = " supersedes ".join((rule.name, *cycle))
                yield where, f"supersedes itself around a cycle: {chain}"
    for index, label in enumerate(spec.equal):
        lacking = [
            name
            for name in (rule.name, *spec.rules)
            if name in rules and not _groups_by(rules[name], label)
        ]
        if lacking:
            yield (
                ("equal", index),
                f"{label!r} is not in group_by of {', '.join(lacking)}: both incidents' group"
                " labels must carry it",
            )


def _groups_by(rule: RuleSpec, label: str) -> bool:
    return label in rule.group_by or ALL_LABELS in rule.group_by


def _path(start: str, goal: str, rules: Mapping[str, RuleSpec]) -> list[str] | None:
    """A chain of ``supersedes`` from ``start`` to ``goal`` (both included), if there is one."""
    seen = {start}
    stack = [[start]]
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        spec = rules[path[-1]].supersedes if path[-1] in rules else None
        for name in reversed(spec.rules if spec is not None else ()):
            if name not in seen:
                seen.add(name)
                stack.append([*path, name])
    return None
