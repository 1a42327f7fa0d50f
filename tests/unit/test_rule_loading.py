"""Loading a rules directory: strict schema, cross-checks, ``file:line: field: reason`` errors."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from detector.engine import delivery as delivery_stage
from detector.ruleset.channel_specs import MAX_CHANNEL_TIMEOUT
from detector.ruleset.loader import RulesInvalid, load_ruleset
from responders.escalation import EscalationPolicy, EscalationStep

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules"

SHARED = """\
components:
  - name: checkout
    display_name: Checkout
channels:
  - name: pager
    type: webhook
    url: http://127.0.0.1:8080/page
escalation_policies:
  - name: oncall
    steps:
      - notify: [pager]
"""

RULE = """\
rules:
  - name: pool-exhausted
    match: ['alertname="PgBouncerPoolSaturated"']
    severity: critical
    title: Connection pool exhausted
    component: checkout
    escalation_policy: oncall
"""


def rules_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    """A rules directory holding ``files`` (name -> YAML text, dedented)."""
    directory = tmp_path / "rules"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def load_errors(directory: Path) -> list[str]:
    """The printed errors of a directory that must not load."""
    with pytest.raises(RulesInvalid) as raised:
        load_ruleset(directory)
    messages = [str(error) for error in raised.value.errors]
    assert str(raised.value) == "\n".join(messages)
    return messages


def with_rule(**fields: str) -> str:
    """RULE with the line of each named key replaced by the given line ("" drops the key)."""
    text = RULE
    for key, line in fields.items():
        original = next(r for r in text.splitlines() if r.strip(" -").startswith(f"{key}:"))
        text = text.replace(original, line)
    return text


def channel_with_timeout(timeout: str) -> str:
    """A rules file with one webhook channel whose timeout is ``timeout`` (on line 5)."""
    return f"""\
        channels:
          - name: slow
            type: webhook
            url: https://hooks.example/slow
            timeout: {timeout}
    """


class TestLoadRulesetErrors:
    @pytest.mark.parametrize(
        ("files", "expected"),
        [
            pytest.param(
                {"rules.yml": with_rule(severity="    sevrity: critical")},
                [
                    "rules.yml:4: rules[0].sevrity: unknown field",
                    "rules.yml:2: rules[0].severity: required field is missing",
                ],
                id="unknown key is an error, not ignored",
            ),
            pytest.param(
                {"rules.yml": with_rule(title="")},
                ["rules.yml:2: rules[0].title: required field is missing"],
                id="missing required field at the rule's line",
            ),
            pytest.param(
                {"rules.yml": with_rule(severity="    severity: urgent")},
                ["rules.yml:4: rules[0].severity: Input should be 'critical', 'major', 'minor'"],
                id="bad severity value",
            ),
            pytest.param(
                {"rules.yml": RULE + "    severity: minor\n"},
                ["rules.yml:8: rules[0].severity: duplicate key (the later value would win)"],
                id="duplicate YAML key",
            ),
            pytest.param(
                {"rules.yml": with_rule(title="    title: Pool: exhausted")},
                ["rules.yml:5: invalid YAML: mapping values are not allowed here"],
                id="YAML syntax error at the problem line",
            ),
            pytest.param(
                {"rules.yml": with_rule(component="    component: payments")},
                ["rules.yml:6: rules[0].component: unknown component 'payments'"],
                id="unknown component",
            ),
            pytest.param(
                {"rules.yml": with_rule(escalation_policy="    escalation_policy: on-call")},
                ["rules.yml:7: rules[0].escalation_policy: unknown escalation policy 'on-call'"],
                id="unknown escalation policy",
            ),
            pytest.param(
                {
                    "rules.yml": RULE,
                    "tiered.yml": """\
                        escalation_policies:
                          - name: tiered
                            steps:
                              - notify: [pager]
                                escalate_after: 5m
                              - notify: [pager, pagr]
                    """,
                },
                ["tiered.yml:6: escalation_policies[0].steps[1].notify[1]: unknown channel 'pagr'"],
                id="unknown channel in a step",
            ),
            pytest.param(
                {
                    "rules.yml": RULE,
                    "tiered.yml": """\
                        escalation_policies:
                          - name: tiered
                            steps:
                              - notify: [pager]
                              - notify: [pager]
                    """,
                },
                [
                    "tiered.yml:4: escalation_policies[0].steps[0]: "
                    "escalate_after is required when another step follows"
                ],
                id="escalate_after missing on a non-last step",
            ),
            pytest.param(
                {"rules.yml": with_rule(title="    title: Pool on {{ .Labels.cluster }}")},
                [
                    "rules.yml:5: rules[0].title: unknown placeholder '{{ .Labels.cluster }}': "
                    "use {{ labels.NAME }} or {{ annotations.NAME }}"
                ],
                id="bad template placeholder",
            ),
            pytest.param(
                {"rules.yml": RULE + "    reopen_within: 5x\n"},
                [
                    "rules.yml:8: rules[0].reopen_within: invalid duration '5x': "
                    "use a number with a unit, like 30s, 5m or 1h30m"
                ],
                id="invalid duration",
            ),
            *(
                pytest.param(
                    {"rules.yml": RULE, "slow.yml": channel_with_timeout(timeout)},
                    ["slow.yml:5: channels[0].timeout: must be longer than 0s and at most 30s"],
                    id=f"channel timeout {case}",
                )
                for timeout, case in [
                    ("0s", "no timeout at all"),
                    ("45s", "longer than a delivery lease allows"),
                ]
            ),
            pytest.param(
                {"rules.yml": "- name: pool-exhausted\n"},
                ["rules.yml:1: expected a mapping with any of: rules, components"],
                id="top level is a list",
            ),
        ],
    )
    def test_error_names_file_line_and_field(
        self, tmp_path: Path, files: dict[str, str], expected: list[str]
    ) -> None:
        directory = rules_dir(tmp_path, {"shared.yml": SHARED, **files})

        errors = load_errors(directory)

        prefixed = [f"{directory}/{piece}" for piece in expected]
        for piece in prefixed:
            assert any(error.startswith(piece) for error in errors), (piece, errors)
        assert len(errors) == len(expected), errors

    @pytest.mark.parametrize(
        "url_lines",
        [
            pytest.param(
                "    url: http://127.0.0.1:8080/page\n    url_env: PAGER_URL\n", id="both"
            ),
            pytest.param("", id="neither"),
        ],
    )
    def test_channel_needs_exactly_one_of_url_or_url_env(
        self, tmp_path: Path, url_lines: str
    ) -> None:
        channels = "channels:\n  - name: chat\n    type: webhook\n" + url_lines
        directory = rules_dir(tmp_path, {"shared.yml": SHARED, "r.yml": RULE, "c.yml": channels})

        errors = load_errors(directory)

        assert errors == [f"{directory}/c.yml:2: channels[0]: set exactly one of url or url_env"]

    def test_bad_regex_in_match_names_the_matcher(self, tmp_path: Path) -> None:
        rule = with_rule(match="    match: ['instance=~\"db-(1\"']")
        directory = rules_dir(tmp_path, {"shared.yml": SHARED, "rules.yml": rule})

        errors = load_errors(directory)

        # pydantic adds a second, misleading "rules[0].match: Tuple should have at least 1 item"
        assert errors[0].startswith(
            f'{directory}/rules.yml:3: rules[0].match[0]: invalid regex "db-(1"'
        ), errors

    def test_duplicate_rule_name_across_files_says_where_it_was_first_defined(
        self, tmp_path: Path
    ) -> None:
        directory = rules_dir(tmp_path, {"a.yml": RULE, "b.yml": "\n\n" + RULE, "s.yml": SHARED})

        errors = load_errors(directory)

        assert errors == [
            f"{directory}/b.yml:4: rules[0].name: duplicate name 'pool-exhausted', "
            f"first defined at {directory}/a.yml:2"
        ]

    def test_duplicate_names_on_one_flow_style_line_are_reported(self, tmp_path: Path) -> None:
        components = (
            "components: [{name: payments, display_name: Payments}, "
            "{name: payments, display_name: Wallets}]\n"
        )
        directory = rules_dir(tmp_path, {"r.yml": RULE, "s.yml": SHARED, "x.yml": components})

        errors = load_errors(directory)

        assert any("duplicate name 'payments'" in error for error in errors)

    @pytest.mark.parametrize(
        "files",
        [
            pytest.param({}, id="empty directory"),
            pytest.param({"shared.yml": SHARED}, id="only channels and policies"),
            pytest.param({"empty.yml": "# nothing yet\n"}, id="only an empty file"),
        ],
    )
    def test_no_rules_defined(self, tmp_path: Path, files: dict[str, str]) -> None:
        directory = rules_dir(tmp_path, files)

        errors = load_errors(directory)

        assert errors == [f"{directory}:1: rules: no rules defined: nothing would be detected"]

    def test_missing_directory(self, tmp_path: Path) -> None:
        errors = load_errors(tmp_path / "nope")

        assert errors == [f"{tmp_path / 'nope'}:1: rules directory does not exist"]

    def test_errors_from_every_file_are_reported_together(self, tmp_path: Path) -> None:
        directory = rules_dir(
            tmp_path,
            {
                "shared.yml": SHARED,
                "a.yml": with_rule(severity="    severity: urgent"),
                "b.yml": with_rule(title="    title: Pool: exhausted"),
            },
        )

        errors = load_errors(directory)

        assert [error.split(":")[0] for error in errors] == [
            f"{directory}/a.yml",
            f"{directory}/b.yml",
        ]


class TestLoadRulesetValid:
    def test_valid_directory_loads_rules_channels_and_policies(self, tmp_path: Path) -> None:
        policy = """\
            escalation_policies:
              - name: tiered
                steps:
                  - notify: [pager]
                    escalate_after: 5m
                  - notify: [pager, chat]
            channels:
              - name: chat
                type: webhook
                url_env: CHAT_WEBHOOK_URL
        """
        second_rule = (
            with_rule(name="  - name: checkout-errors").replace(
                "severity: critical", "severity: major"
            )
            + "    resolve_after: 15m\n    group_by: [cluster]\n"
        )
        directory = rules_dir(
            tmp_path,
            {"shared.yml": SHARED, "db.yml": RULE, "checkout.yaml": second_rule, "p.yml": policy},
        )
        (directory / "README.md").write_text("not a rule file: ignored")
        (directory / "tests").mkdir()
        (directory / "tests" / "broken.yml").write_text("rules: [")

        ruleset = load_ruleset(directory)

        assert sorted(ruleset.rules) == ["checkout-errors", "pool-exhausted"]
        errors_rule = ruleset.rules["checkout-errors"]
        assert (errors_rule.severity, errors_rule.resolve_after) == ("major", timedelta(minutes=15))
        assert errors_rule.group_by == ("cluster",)
        assert ruleset.rules["pool-exhausted"].reopen_within == timedelta(minutes=5)
        assert ruleset.policies["tiered"] == EscalationPolicy(
            "tiered",
            (
                EscalationStep(("pager",), timedelta(minutes=5)),
                EscalationStep(("pager", "chat"), None),
            ),
        )
        assert ruleset.policy_for(ruleset.rules["pool-exhausted"]) == ruleset.policies["oncall"]
        assert sorted(ruleset.channels) == ["chat", "pager"]
        assert ruleset.channels["chat"].url_env == "CHAT_WEBHOOK_URL"
        assert list(ruleset.components) == ["checkout"]
        assert len(ruleset.files) == 4

    def test_shipped_rules_directory_loads(self) -> None:
        ruleset = load_ruleset(SHIPPED_RULES)

        assert "db-connection-pool-exhausted" in ruleset.rules
        for rule in ruleset.rules.values():
            assert rule.component is None or rule.component in ruleset.components
            assert rule.escalation_policy is None or rule.escalation_policy in ruleset.policies


def test_the_longest_channel_timeout_fits_twice_in_a_delivery_lease() -> None:
    assert MAX_CHANNEL_TIMEOUT * 2 <= delivery_stage.LEASE
