"""A rule's ``component_status``: the level its incidents mean for its component, validated."""

from __future__ import annotations

from pathlib import Path

from detector.ruleset.loader import load_ruleset
from responders.statuspage.model import ComponentLevel
from tests.unit.test_rule_loading import RULE, SHARED, load_errors, rules_dir


def test_level_defaults_to_partial_outage_and_can_be_set(tmp_path: Path) -> None:
    rule = RULE + "    component_status: major_outage\n"
    other = RULE.replace("pool-exhausted", "other")
    ruleset = load_ruleset(rules_dir(tmp_path, {"s.yml": SHARED, "a.yml": rule, "b.yml": other}))

    levels = {name: rule.outage_level for name, rule in ruleset.rules.items()}

    assert levels == {
        "pool-exhausted": ComponentLevel.MAJOR_OUTAGE,
        "other": ComponentLevel.PARTIAL_OUTAGE,
    }


def test_maintenance_is_not_a_level_an_incident_can_mean(tmp_path: Path) -> None:
    rule = RULE + "    component_status: under_maintenance\n"
    directory = rules_dir(tmp_path, {"s.yml": SHARED, "a.yml": rule})

    assert load_errors(directory) == [
        f"{directory}/a.yml:8: rules[0].component_status: Input should be"
        " 'degraded_performance', 'partial_outage' or 'major_outage'"
    ]


def test_a_level_needs_a_component(tmp_path: Path) -> None:
    rule = RULE.replace("    component: checkout\n", "") + "    component_status: major_outage\n"
    directory = rules_dir(tmp_path, {"s.yml": SHARED, "a.yml": rule})

    assert load_errors(directory) == [
        f"{directory}/a.yml:2: rules[0]: component_status: needs a component to apply to"
    ]
