"""Load a rules directory into a RuleSet: strict schema, then cross-checks, every error with
``file:line: field: reason``. Either the whole directory is valid or nothing is returned."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import ValidationError

from detector.domain.fieldpath import field_path
from detector.probes.journey import journey_problems
from detector.ruleset.channel_specs import target_problem
from detector.ruleset.maintenance import MaintenanceWindowSpec, SilenceSpec, never_active
from detector.ruleset.matchers import Matcher, MatchOp
from detector.ruleset.notice_check import check_notices
from detector.ruleset.oncall_checks import gap_warnings, oncall_errors
from detector.ruleset.positions import PositionedDocument, RuleError, parse
from detector.ruleset.rules import RuleSet
from detector.ruleset.rules_file import SECTIONS, RulesFile
from detector.ruleset.schema import RuleSpec
from detector.ruleset.supersedes import supersedes_problems


class RulesInvalid(Exception):
    """The rules directory has errors; ``errors`` lists all of them."""

    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """One valid file with its positions, kept for cross-checks."""

    name: str
    document: PositionedDocument
    content: RulesFile


def rule_files(directory: Path) -> list[Path]:
    """The YAML files that make up a rule set: top level only (``tests/`` holds rule tests),
    hidden ones left out (editors' lock and temporary files, such as Emacs's ``.#paging.yml``)."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in {".yml", ".yaml"} and not p.name.startswith(".") and p.is_file()
    )


def load_ruleset(directory: Path, now: datetime | None = None) -> RuleSet:
    """Validate every file in ``directory`` and build the rule set, or raise RulesInvalid.
    What is valid but likely a mistake (nobody on call soon after ``now``) comes back in the
    rule set's ``warnings``."""
    now = now or datetime.now(UTC)
    if not directory.is_dir():
        raise RulesInvalid([RuleError(str(directory), 1, "", "rules directory does not exist")])
    errors: list[RuleError] = []
    loaded: list[LoadedFile] = []
    for path in rule_files(directory):
        file_errors, result = _load_file(path)
        errors.extend(file_errors)
        if result is not None:
            loaded.append(result)
    if not errors:
        errors.extend(cross_check(loaded, now))
    policy, templates, notice_errors = check_notices(directory, loaded)
    errors.extend(notice_errors)
    if not errors and not any(item.content.rules for item in loaded):
        errors.append(
            RuleError(str(directory), 1, "rules", "no rules defined: nothing would be detected")
        )
    if errors or templates is None:
        raise RulesInvalid(errors)
    ruleset = build(loaded)
    warnings = tuple(gap_warnings(loaded, ruleset.schedules, now))
    return replace(ruleset, notice_policy=policy, notice_templates=templates, warnings=warnings)


def _load_file(path: Path) -> tuple[list[RuleError], LoadedFile | None]:
    name = str(path)
    try:
        document = parse(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(err, "problem", None) or str(err)
        return [RuleError(name, line, "", f"invalid YAML: {reason}")], None
    except (OSError, UnicodeDecodeError) as err:
        return [RuleError(name, 1, "", f"cannot read file: {err}")], None
    errors = [
        RuleError(name, line, field_path(path_), "duplicate key (the later value would win)")
        for path_, line in document.duplicates
    ]
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        errors.append(
            RuleError(name, 1, "", f"expected a mapping with any of: {', '.join(SECTIONS)}")
        )
        return errors, None
    try:
        content = RulesFile.model_validate(data)
    except ValidationError as err:
        errors.extend(schema_errors(name, document, err))
        return errors, None
    return errors, LoadedFile(name, document, content)


def schema_errors(
    name: str, document: PositionedDocument, err: ValidationError
) -> Iterator[RuleError]:
    """Pydantic errors as ``file:line: field: reason``."""
    for error in err.errors():
        loc = tuple(part for part in error["loc"] if part != "webhook")
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            reason = "unknown field"
        elif error["type"] == "missing":
            reason = "required field is missing"
        yield RuleError(name, document.line_of(loc), field_path(loc), reason)


def cross_check(files: Iterable[LoadedFile], now: datetime) -> list[RuleError]:
    """Checks that span files: unique names and references that resolve."""
    files = list(files)
    errors: list[RuleError] = []
    defined: dict[str, dict[str, str]] = {section: {} for section in SECTIONS}
    for item in files:
        for section in SECTIONS:
            for index, entry in enumerate(getattr(item.content, section)):
                where = f"{item.name}:{item.document.line_of((section, index))}"
                if entry.name not in defined[section]:
                    defined[section][entry.name] = where
                else:
                    first = defined[section][entry.name]
                    errors.append(
                        _error(
                            item,
                            (section, index, "name"),
                            f"duplicate name {entry.name!r}, first defined at {first}",
                        )
                    )
    for item in files:
        errors.extend(_reference_errors(item, defined, now))
    errors.extend(oncall_errors(files, defined["channels"]))
    everything = {rule.name: rule for item in files for rule in item.content.rules}
    for item in files:
        for index, rule in enumerate(item.content.rules):
            for path, reason in supersedes_problems(rule, everything):
                errors.append(_error(item, ("rules", index, "supersedes", *path), reason))
    return errors


def _reference_errors(
    item: LoadedFile, defined: dict[str, dict[str, str]], now: datetime
) -> Iterator[RuleError]:
    yield from _rule_errors(item, defined)
    yield from _policy_errors(item, defined)
    for index, channel in enumerate(item.content.channels):
        problem = target_problem(channel)
        if problem is not None:
            yield _error(item, ("channels", index), problem)
    for section in ("silences", "maintenance_windows"):
        windows: tuple[SilenceSpec | MaintenanceWindowSpec, ...] = getattr(item.content, section)
        for index, window in enumerate(windows):
            problem = never_active(window, now)
            if problem is not None:
                yield _error(item, (section, index), problem)
            for rule_index, rule_name in enumerate(window.rules):
                if rule_name not in defined["rules"]:
                    yield _error(
                        item, (section, index, "rules", rule_index), f"unknown rule {rule_name!r}"
                    )
            public = window.public.components if window.public else ()
            for component_index, component in enumerate(public):
                if component not in defined["components"]:
                    yield _error(
                        item,
                        (section, index, "public", "components", component_index),
                        f"unknown component {component!r}",
                    )
    for index, journey in enumerate(item.content.journeys):
        for path, problem in journey_problems(journey):
            yield _error(item, ("journeys", index, *path), problem)


def _rule_errors(item: LoadedFile, defined: dict[str, dict[str, str]]) -> Iterator[RuleError]:
    for index, rule in enumerate(item.content.rules):
        if rule.component and rule.component not in defined["components"]:
            yield _error(
                item, ("rules", index, "component"), f"unknown component {rule.component!r}"
            )
        if rule.escalation_policy and rule.escalation_policy not in defined["escalation_policies"]:
            yield _error(
                item,
                ("rules", index, "escalation_policy"),
                f"unknown escalation policy {rule.escalation_policy!r}",
            )
        problem = never_fires(rule)
        if problem is not None:
            yield _error(item, ("rules", index), problem)


def never_fires(rule: RuleSpec) -> str | None:
    """Why a rule's condition can never be met, if it visibly cannot."""
    spec = rule.threshold
    if spec is not None and spec.distinct in rule.group_by and spec.count > 1:
        return (
            f"threshold can never fire: {spec.distinct!r} is also a group_by label, so each "
            f"incident group sees one value of it, never {spec.count}"
        )
    for index, selector in enumerate(rule.all_of or ()):
        for wanted in selector:
            for given in rule.match:
                if contradicts(given, wanted):
                    return (
                        f"all_of[{index}] can never match together with match: {given} vs {wanted}"
                    )
    return None


def contradicts(first: Matcher, second: Matcher) -> bool:
    """Two equality matchers on the same label with different values exclude each other."""
    return (
        first.name == second.name
        and first.op is MatchOp.EQUAL
        and second.op is MatchOp.EQUAL
        and first.value != second.value
    )


def _policy_errors(item: LoadedFile, defined: dict[str, dict[str, str]]) -> Iterator[RuleError]:
    for index, policy in enumerate(item.content.escalation_policies):
        for step_index, step in enumerate(policy.steps):
            where = ("escalation_policies", index, "steps", step_index)
            for channel_index, target in enumerate(step.notify):
                if target not in defined["channels"]:
                    yield _error(
                        item, (*where, "notify", channel_index), f"unknown channel {target!r}"
                    )
            if step.escalate_after is None and step_index + 1 < len(policy.steps):
                yield _error(item, where, "escalate_after is required when another step follows")


def _error(item: LoadedFile, path: tuple[str | int, ...], reason: str) -> RuleError:
    return RuleError(item.name, item.document.line_of(path), field_path(path), reason)


def build(files: Iterable[LoadedFile]) -> RuleSet:
    """Assemble validated files into the running rule set."""
    files = list(files)
    contents = [item.content for item in files]
    return RuleSet(
        rules={rule.name: rule for content in contents for rule in content.rules},
        components={c.name: c for content in contents for c in content.components},
        channels={c.name: c for content in contents for c in content.channels},
        policies={p.name: p.to_policy() for c in contents for p in c.escalation_policies},
        windows=tuple(window for content in contents for window in _windows(content)),
        journeys={j.name: j for content in contents for j in content.journeys},
        files=tuple(item.name for item in files),
        people={p.id: p for content in contents for p in content.people},
        schedules={s.name: s.to_schedule() for c in contents for s in c.schedules},
    )


def _windows(content: RulesFile) -> tuple[SilenceSpec | MaintenanceWindowSpec, ...]:
    return (*content.silences, *content.maintenance_windows)
