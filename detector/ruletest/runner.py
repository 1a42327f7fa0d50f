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
from detector.ruletest.simulator import Simulation

_MAX_STEPS = 100_000
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
    events = sorted(_events(case), key=lambda event: (event[0], event[1]))
    end = max((event[0] for event in events), default=case.start) + case.run_for
    position = 0
    for _ in range(_MAX_STEPS):
        upcoming = [
            t for t in (_time_at(events, position), simulation.next_timer()) if t is not None
        ]
        now = min(upcoming, default=None)
        if now is None or now > end:
            return simulation
        while position < len(events) and events[position][0] == now:
            events[position][2](simulation, now)
            position += 1
        simulation.fire_due(now)
    raise RuntimeError(f"scenario {case.name!r} did not settle after {_MAX_STEPS} steps")


def _time_at(events: list[Any], position: int) -> datetime | None:
    return events[position][0] if position < len(events) else None


def _events(case: RuleTestCase) -> Iterator[tuple[datetime, int, Any]]:
    order = 0
    for alert in case.alerts:
        for offset in alert.times():
            order += 1
            yield (
                case.start + offset,
                order,
                _deliver(alert.labels, alert.annotations, alert.status),
            )
    for action in case.actions:
        order += 1
        rule, kind = (action.ack, "ack") if action.ack else (action.resolve or "", "resolve")
        yield case.start + action.at, order, lambda sim, now, r=rule, k=kind: sim.act(r, k, now)


def _deliver(labels: dict[str, str], annotations: dict[str, str], status: AlertStatus) -> Any:
    return lambda simulation, now: simulation.receive(labels, annotations, status, now)


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
