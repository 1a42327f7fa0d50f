"""Run rule-test files: simulate each scenario, compare with what it expects, show a diff."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from detector.domain.durations import format_duration
from detector.domain.model import AlertStatus, Incident
from detector.ruleset.loader import RulesInvalid, load_ruleset, schema_errors
from detector.ruleset.positions import RuleError, parse
from detector.ruleset.rules import RuleSet
from detector.ruletest.schema import RuleTestCase, RuleTestFile
from detector.ruletest.simulator import Input, NotSettled, Simulation

_SHOWN_FOR_EXTRA = ("rule", "title", "severity", "state")


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One scenario's outcome; ``diff`` is empty when it passed."""

    location: str
    name: str
    diff: str

    @property
    def passed(self) -> bool:
        """True when what happened is what the scenario expected."""
        return not self.diff


def run_file(path: Path) -> list[CaseResult]:
    """Run every scenario of a test file; raise RulesInvalid for a bad test file or rule set."""
    name = str(path)
    try:
        document = parse(path.read_text(encoding="utf-8"))
        spec = RuleTestFile.model_validate(document.data or {})
    except yaml.YAMLError as err:
        raise RulesInvalid([RuleError(name, _yaml_line(err), "", f"invalid YAML: {err}")]) from None
    except OSError as err:
        raise RulesInvalid([RuleError(name, 1, "", f"cannot read file: {err}")]) from None
    except ValidationError as err:
        raise RulesInvalid(list(schema_errors(name, document, err))) from None
    rules = load_ruleset((path.parent / spec.rules).resolve())
    return [
        CaseResult(f"{name}:{document.line_of(('tests', index))}", case.name, run_case(rules, case))
        for index, case in enumerate(spec.tests)
    ]


def _yaml_line(err: yaml.YAMLError) -> int:
    mark = getattr(err, "problem_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def run_case(rules: RuleSet, case: RuleTestCase) -> str:
    """Simulate one scenario and return the diff against its expectations ('' if none)."""
    simulation = simulate(rules, case)
    incidents = sorted(simulation.incidents.values(), key=lambda i: (i.opened_at, i.id or 0))
    diff = _incident_diff(case, [describe(i, case.start) for i in incidents])
    if case.expect.pages is not None:
        got = [
            {"at": format_duration(p.at - case.start), "channel": p.channel, "event": p.event}
            for p in simulation.pages
        ]
        wanted = [page.model_dump(mode="json") for page in case.expect.pages]
        diff += _diff("pages", wanted, got)
    return diff


def simulate(rules: RuleSet, case: RuleTestCase) -> Simulation:
    """Step through inputs and timers in time order until the last input plus ``run_for``."""
    simulation = Simulation(rules)
    inputs = list(_inputs(case))
    end = max((at for at, _ in inputs), default=case.start) + case.run_for
    try:
        simulation.play(inputs, end)
    except NotSettled as err:
        raise RuntimeError(f"scenario {case.name!r} {err}") from None
    return simulation


def _inputs(case: RuleTestCase) -> Iterator[tuple[datetime, Input]]:
    """Alerts and actions at their moments, in file order (which ``play`` keeps at one moment)."""
    for alert in case.alerts:
        for offset in alert.times():
            yield case.start + offset, _deliver(alert.labels, alert.annotations, alert.status)
    for action in case.actions:
        rule, kind = (action.ack, "ack") if action.ack else (action.resolve or "", "resolve")
        yield case.start + action.at, _act(rule, kind)


def _deliver(labels: dict[str, str], annotations: dict[str, str], status: AlertStatus) -> Input:
    return lambda simulation, now: simulation.receive(labels, annotations, status, now)


def _act(rule: str, kind: str) -> Input:
    return lambda simulation, now: simulation.act(rule, kind, now)


def describe(incident: Incident, start: datetime) -> dict[str, Any]:
    """An incident in the vocabulary of the test file."""
    return {
        "rule": incident.rule,
        "title": incident.title,
        "summary": incident.summary,
        "severity": incident.severity.value,
        "state": incident.state.value,
        "component": incident.component,
        "group": dict(incident.group_labels),
        "opened_at": format_duration(incident.opened_at - start),
        "resolved_at": format_duration(incident.resolved_at - start)
        if incident.resolved_at
        else None,
    }


def _incident_diff(case: RuleTestCase, got: list[dict[str, Any]]) -> str:
    wanted = [e.model_dump(mode="json", exclude_none=True) for e in case.expect.incidents]
    shown = []
    for index, incident in enumerate(got):
        keys = wanted[index].keys() if index < len(wanted) else _SHOWN_FOR_EXTRA
        shown.append({key: incident[key] for key in keys})
    return _diff("incidents", wanted, shown)


def _diff(title: str, wanted: list[dict[str, Any]], got: list[dict[str, Any]]) -> str:
    if wanted == got:
        return ""
    lines = difflib.unified_diff(
        yaml.safe_dump(wanted, sort_keys=False).splitlines(),
        yaml.safe_dump(got, sort_keys=False).splitlines(),
        f"{title} expected",
        f"{title} got",
        lineterm="",
    )
    return "\n".join(lines) + "\n"
