"""The shipped rule pack in ``rules/``: it loads, every rule is tested both ways, every scenario
passes, and every paging alert that Prometheus can send reaches a rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.domain.model import AlertStatus, Signal, Source
from detector.intake.alertmanager import fingerprint_of
from detector.ruleset.loader import load_ruleset
from detector.ruleset.matchers import Matcher, matches_all
from detector.ruleset.rules import RuleSet
from detector.ruleset.schema import RuleSpec
from detector.ruletest.runner import CaseResult, run_file
from detector.ruletest.schema import RuleTestCase, RuleTestFile

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "rules"
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.yml"))
ALERT_FILES = sorted(
    path
    for path in (ROOT / "deploy" / "prometheus" / "alerts").glob("*.yml")
    if path.name != "stormwatch.yml"  # about Stormwatch itself: routed to people, never to it
)
CLUSTER = "shop-prod"  # Prometheus adds it to every alert from external_labels
RECEIVED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@cache
def shipped_rules() -> RuleSet:
    """The rules directory as the service would load it."""
    return load_ruleset(RULES_DIR)


@cache
def scenario_file(path: Path) -> RuleTestFile:
    """One rule-test file, parsed with the runner's own schema."""
    return RuleTestFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@cache
def results(path: Path) -> tuple[CaseResult, ...]:
    """Every scenario of a test file, run once however many tests ask."""
    return tuple(run_file(path))


def scenarios() -> Iterator[tuple[Path, int, RuleTestCase]]:
    """Every scenario in rules/tests, with its file and position."""
    for path in TEST_FILES:
        for index, case in enumerate(scenario_file(path).tests):
            yield path, index, case


def prometheus_alerts() -> list[dict[str, Any]]:
    """Every alerting rule in deploy/prometheus/alerts (recording rules left out)."""
    return [
        rule
        for path in ALERT_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def alerts_with_severity(*severities: str) -> list[Any]:
    """Prometheus alerts of the given severities, as pytest params with readable ids."""
    return [
        pytest.param(rule, id=rule["alert"])
        for rule in prometheus_alerts()
        if rule.get("labels", {}).get("severity") in severities
    ]


def signal_for(alert_rule: dict[str, Any]) -> Signal:
    """The signal Alertmanager would deliver for a Prometheus alerting rule."""
    labels = {**alert_rule.get("labels", {}), "alertname": alert_rule["alert"], "cluster": CLUSTER}
    return Signal(
        source=Source.ALERTMANAGER,
        name=alert_rule["alert"],
        fingerprint=fingerprint_of(labels),
        status=AlertStatus.FIRING,
        starts_at=RECEIVED,
        ends_at=None,
        labels=labels,
        annotations={},
        received_at=RECEIVED,
    )


def handling_rules(signal: Signal) -> list[str]:
    """Rules that would count the signal towards an incident (not only as an absent's expect)."""
    return [
        match.rule.name
        for match in shipped_rules().route(signal)
        if matches_all(match.rule.match, signal.labels)
    ]


def alertname_selectors(rule: RuleSpec) -> list[list[Matcher]]:
    """The ``alertname`` matchers of each way an alert can count for the rule."""
    selectors = [rule.match] if rule.all_of is None else [rule.match + s for s in rule.all_of]
    return [[m for m in selector if m.name == "alertname"] for selector in selectors]


def names_in(case: RuleTestCase) -> set[str]:
    """Every rule a scenario names, in expected incidents or in actions."""
    named = {incident.rule for incident in case.expect.incidents}
    return named | {action.ack or action.resolve or "" for action in case.actions}


class TestRulePackLoads:
    """rules/ is a valid, complete rule set."""

    def test_directory_loads_with_every_section(self) -> None:
        rules = shipped_rules()

        assert "db-connection-pool-exhausted" in rules.rules
        assert rules.components
        assert rules.channels
        assert rules.policies

    @pytest.mark.parametrize("name", sorted(shipped_rules().rules))
    def test_rule_is_complete(self, name: str) -> None:
        rule = shipped_rules().rules[name]

        assert rule.description.strip(), "the on-call engineer needs a description"
        assert rule.escalation_policy in shipped_rules().policies
        assert rule.title.strip()
        # A heartbeat says nothing about what shoppers see, so it may leave the status page alone.
        assert rule.component in shipped_rules().components or rule.heartbeat is not None

    def test_every_policy_and_component_is_used(self) -> None:
        rules = shipped_rules()
        policies = {rule.escalation_policy for rule in rules.rules.values()}
        components = {rule.component for rule in rules.rules.values()}

        assert set(rules.policies) <= policies, "unused escalation policy"
        assert set(rules.components) <= components, "unused component"

    def test_every_channel_is_in_some_policy(self) -> None:
        rules = shipped_rules()
        used = {c for policy in rules.policies.values() for s in policy.steps for c in s.channels}

        assert set(rules.channels) <= used


class TestRuleScenarios:
    """rules/tests: every rule is exercised both ways and every scenario passes."""

    def test_there_are_test_files(self) -> None:
        assert TEST_FILES

    def test_scenarios_name_only_existing_rules(self) -> None:
        # An ack or resolve naming an unknown rule does nothing, so a typo could pass unnoticed.
        unknown = {
            f"{path.name}: {case.name}: {name}"
            for path, _, case in scenarios()
            for name in names_in(case)
            if name not in shipped_rules().rules
        }

        assert not unknown

    @pytest.mark.parametrize("name", sorted(shipped_rules().rules))
    def test_rule_has_a_scenario_where_it_opens_and_pages(self, name: str) -> None:
        fields = ("severity", "title", "group", "state")
        opening = [
            case.name
            for _, _, case in scenarios()
            if case.expect.pages is not None
            for incident in case.expect.incidents
            if incident.rule == name and all(getattr(incident, f) is not None for f in fields)
        ]

        assert opening, (
            f"no scenario expects an incident of {name!r} with {', '.join(fields)} "
            "and checks the pages"
        )

    @pytest.mark.parametrize("name", sorted(shipped_rules().rules))
    def test_rule_has_a_scenario_where_it_must_not_open(self, name: str) -> None:
        rule = shipped_rules().rules[name]
        quiet = [
            case.name
            for _, _, case in scenarios()
            if name not in {incident.rule for incident in case.expect.incidents}
            and any(
                all(m.matches(alert.labels) for m in selector)
                for alert in case.alerts
                for selector in alertname_selectors(rule)
            )
        ]

        assert quiet, f"no scenario sends an alert {name!r} watches and expects it to stay quiet"

    @pytest.mark.parametrize(
        ("path", "index"),
        [
            pytest.param(path, index, id=f"{path.name}: {case.name}")
            for path, index, case in scenarios()
        ],
    )
    def test_scenario_passes(self, path: Path, index: int) -> None:
        result = results(path)[index]

        assert result.passed, f"{result.location}: {result.name}\n{result.diff}"


class TestPrometheusAlertsReachRules:
    """Every alert deploy/prometheus can page or ticket for is handled by some rule."""

    def test_there_are_paging_alerts(self) -> None:
        assert alerts_with_severity("page")

    @pytest.mark.parametrize("alert_rule", alerts_with_severity("page"))
    def test_paging_alert_is_matched(self, alert_rule: dict[str, Any]) -> None:
        signal = signal_for(alert_rule)

        assert handling_rules(signal), f"no rule matches {dict(signal.labels)}"

    @pytest.mark.parametrize("alert_rule", alerts_with_severity("ticket"))
    def test_ticket_alert_is_matched(self, alert_rule: dict[str, Any]) -> None:
        signal = signal_for(alert_rule)

        assert handling_rules(signal), f"no rule matches {dict(signal.labels)}"

    def test_watchdog_is_watched_by_a_heartbeat_rule(self) -> None:
        (watchdog,) = [rule for rule in prometheus_alerts() if rule["alert"] == "Watchdog"]
        rules = shipped_rules().rules

        assert any(rules[name].heartbeat for name in handling_rules(signal_for(watchdog)))
