"""``stormwatch rules test`` itself: the simulation honours windows, and bad test files get
``file:line: field: reason``."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.ruleset.loader import RulesInvalid
from detector.ruletest.runner import run_file

RULES = """
channels:
  - {name: pager, type: webhook, url: "http://127.0.0.1:9/page"}
escalation_policies:
  - name: oncall
    steps: [{notify: [pager]}]
rules:
  - name: pool
    match: ['alertname="PgBouncerPoolSaturated"']
    severity: critical
    title: Pool exhausted
    escalation_policy: oncall
silences:
  - name: upgrade
    rules: [pool]
    starts_at: 2026-11-27T09:00:00Z
    ends_at: 2026-11-27T09:30:00Z
    comment: planned PgBouncer upgrade
"""

SCENARIO = """
tests:
  - name: {name}
    alerts:
      - at: 10m
        labels: {{alertname: PgBouncerPoolSaturated}}
{resolve}
    run_for: 30m
    expect:
      incidents:
        - {{rule: pool, state: {state}}}
      pages: {pages}
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "tests").mkdir()
    return tmp_path


def scenario(rules_dir: Path, **fields: str) -> Path:
    path = rules_dir / "tests" / "scenario.test.yml"
    path.write_text(SCENARIO.format(**fields))
    return path


class TestSimulatedWindows:
    def test_page_held_until_the_silence_ends(self, rules_dir: Path) -> None:
        path = scenario(
            rules_dir,
            name="still broken after the upgrade",
            resolve="",
            state="triggered",
            pages="[{at: 30m, channel: pager, event: triggered}]",
        )
        [result] = run_file(path)
        assert result.passed, result.diff

    def test_resolved_inside_the_silence_never_pages(self, rules_dir: Path) -> None:
        resolved = (
            "      - {at: 20m, labels: {alertname: PgBouncerPoolSaturated}, status: resolved}"
        )
        path = scenario(
            rules_dir, name="fixed in time", resolve=resolved, state="resolved", pages="[]"
        )
        [result] = run_file(path)
        assert result.passed, result.diff


class TestBadTestFiles:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param(
                "tests: []\n",
                "scenario.test.yml:1: tests: List should have at least 1 item",
                id="no scenarios",
            ),
            pytest.param(
                "tests:\n  - name: x\n    alerts: [{at: 5x, labels: {a: b}}]\n    expect: {}\n",
                "scenario.test.yml:3: tests[0].alerts[0].at: invalid duration '5x'",
                id="bad duration",
            ),
            pytest.param(
                "tests:\n  - name: x\n    expct: {}\n",
                "scenario.test.yml:3: tests[0].expct: unknown field",
                id="misspelt key",
            ),
        ],
    )
    def test_error_names_file_line_and_field(
        self, rules_dir: Path, text: str, expected: str
    ) -> None:
        path = rules_dir / "tests" / "scenario.test.yml"
        path.write_text(text)
        with pytest.raises(RulesInvalid) as raised:
            run_file(path)
        assert any(expected in str(error) for error in raised.value.errors), raised.value.errors
