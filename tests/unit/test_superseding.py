"""Superseding rules: which open incident holds back which, what a held decision keeps, what an
ack or resolution of the superseding incident says, and the checks of ``supersedes:``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.domain.incidents import decide_ack, decide_resolve, decide_signals, decide_timer
from detector.domain.model import (
    AlertStatus,
    Decision,
    Incident,
    IncidentState,
    Signal,
    Source,
    Timer,
    TimerKind,
)
from detector.domain.muting import DEFERRED_BY
from detector.domain.reasons import DecisionReason
from detector.domain.superseding import (
    RECHECK_AFTER,
    SUPERSEDED_BY,
    Party,
    agree,
    cover,
    covered,
    decision_order,
    hold,
    superseders,
    would_page,
)
from detector.ruleset.loader import RulesInvalid, load_ruleset
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.ruleset.schema import RuleSpec
from responders.escalation import EscalationPolicy, EscalationStep
from responders.messages import PageEvent

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
POLICY = EscalationPolicy(
    "oncall",
    (EscalationStep(("pager",), escalate_after=5 * MIN), EscalationStep(("backup",))),
)
EU = {"cluster": "eu-1"}
CAUSE = "checkout-failing-pool-exhausted"


def spec(name: str, group_by: tuple[str, ...] = ("cluster",), **extra: Any) -> RuleSpec:
    return RuleSpec.model_validate(
        {
            "name": name,
            "match": [f'alertname="{name}"'],
            "group_by": list(group_by),
            "severity": "critical",
            "title": name,
            "escalation_policy": "oncall",
            **extra,
        }
    )


def ruleset(*specs: RuleSpec) -> RuleSet:
    return RuleSet(
        rules={s.name: s for s in specs}, components={}, channels={}, policies={"oncall": POLICY}
    )


RULES = ruleset(
    spec("pool-exhausted", ("cluster", "database")),
    spec("checkout-errors"),
    spec(CAUSE, supersedes={"rules": ["pool-exhausted", "checkout-errors"], "equal": ["cluster"]}),
    spec("everything", ("...",), supersedes={"rules": [CAUSE]}),
)


def party(incident_id: int, rule: str, **labels: str) -> Party:
    return Party(incident_id, rule, rule, labels)


def signal(name: str, status: AlertStatus = AlertStatus.FIRING) -> Signal:
    return Signal(
        source=Source.ALERTMANAGER,
        name=name,
        fingerprint=name,
        status=status,
        starts_at=T0,
        ends_at=None,
        labels={"alertname": name, **EU},
        annotations={},
        received_at=T0,
    )


def opened(rule: str, labels: dict[str, str] | None = None) -> Decision:
    """The decision opening an incident of ``rule`` for ``labels`` (eu-1 by default)."""
    group = labels or EU
    match = RuleMatch(RULES.rules[rule], str(group), group)
    return decide_signals(None, [signal(rule)], match, POLICY, T0)


def stored(decision: Decision, incident_id: int) -> Incident:
    """The incident a decision opened, as the store gave it back."""
    assert decision.incident is not None
    return replace(decision.incident, id=incident_id)


class TestAgree:
    @pytest.mark.parametrize(
        ("equal", "first", "second", "expected"),
        [
            pytest.param(("cluster",), EU, EU, True, id="same-value"),
            pytest.param(("cluster",), EU, {"cluster": "us-1"}, False, id="different-value"),
            pytest.param((), EU, {"cluster": "us-1"}, True, id="no-equal-labels-any-group"),
            # Missing counts as empty, as in Alertmanager: two missing values agree...
            pytest.param(("zone",), EU, {"cluster": "us-1"}, True, id="missing-on-both"),
            # ...and a missing value agrees with an empty one, not with a set one.
            pytest.param(("zone",), {"zone": ""}, {}, True, id="missing-equals-empty"),
            pytest.param(("zone",), {"zone": "a"}, {}, False, id="missing-is-not-a-value"),
            pytest.param(
                ("cluster", "zone"),
                {"cluster": "eu-1", "zone": "a"},
                {"cluster": "eu-1", "zone": "b"},
                False,
                id="every-label-must-agree",
            ),
        ],
    )
    def test_agree(
        self,
        equal: tuple[str, ...],
        first: dict[str, str],
        second: dict[str, str],
        expected: bool,
    ) -> None:
        assert agree(equal, first, second) is expected


class TestWhoSupersedes:
    OPEN = (
        party(7, CAUSE, cluster="us-1"),
        party(5, CAUSE, cluster="eu-1"),
        party(9, "checkout-errors", cluster="eu-1"),
        party(3, "everything", cluster="eu-1", alertname="x"),
    )

    @pytest.mark.parametrize(
        ("rule", "labels", "expected"),
        [
            # The cause of the same cluster supersedes the pool; the one of us-1 does not.
            pytest.param(
                "pool-exhausted", {"cluster": "eu-1", "database": "orders"}, [5], id="pool"
            ),
            pytest.param("checkout-errors", {"cluster": "us-1"}, [7], id="other-cluster"),
            pytest.param("checkout-errors", {"cluster": "ap-1"}, [], id="no-cause-open-there"),
            # No equal labels: any open incident of the superseding rule.
            pytest.param(CAUSE, {"cluster": "ap-1"}, [3], id="empty-equal-matches-any"),
            # Nothing supersedes the top of the chain.
            pytest.param("everything", {}, [], id="nothing-above"),
        ],
    )
    def test_superseders(self, rule: str, labels: dict[str, str], expected: list[int]) -> None:
        incident = stored(opened(rule, labels), 100)
        assert [p.id for p in superseders(incident, self.OPEN, RULES)] == expected

    def test_covered_are_the_open_incidents_of_superseded_rules_in_its_group(self) -> None:
        cause = stored(opened(CAUSE), 100)
        others = [
            party(1, "pool-exhausted", cluster="eu-1", database="orders"),
            party(2, "pool-exhausted", cluster="us-1", database="orders"),
            party(4, "checkout-errors", cluster="eu-1"),
            party(6, CAUSE, cluster="eu-1"),
        ]
        assert [p.id for p in covered(cause, others, RULES)] == [1, 4]

    def test_a_rule_superseding_nothing_covers_nothing(self) -> None:
        pool = stored(opened("pool-exhausted"), 100)
        assert covered(pool, [party(4, "checkout-errors", cluster="eu-1")], RULES) == []


class TestHold:
    BY = party(12, CAUSE, cluster="eu-1")

    def test_an_opening_is_recorded_but_pages_nobody(self) -> None:
        decision = opened("pool-exhausted")
        held = hold(decision, self.BY, None, T0)
        assert held.incident is not None
        assert held.reason is DecisionReason.OPENED
        assert held.pages == ()
        assert held.incident.paged == ()  # nobody heard, so nobody gets the follow-ups
        [deferred] = [t for t in held.timers if t.kind is TimerKind.ESCALATE]
        assert deferred.due_at == T0 + RECHECK_AFTER
        assert deferred.payload == {"step": 0, DEFERRED_BY: "incident #12", SUPERSEDED_BY: 12}
        assert held.timeline[-1].kind == "pages.deferred"
        assert held.timeline[-1].detail == {"by": 12, "rule": CAUSE, "channels": ["pager"]}
        assert [e.kind for e in held.timeline[:-1]] == [e.kind for e in decision.timeline]

    def test_an_escalation_keeps_the_channels_paged_before(self) -> None:
        incident = stored(opened("pool-exhausted"), 13)
        timer = Timer(1, 13, TimerKind.ESCALATE, T0 + 5 * MIN, 0, {"step": 1})
        escalation = decide_timer(incident, timer, RULES.rules["pool-exhausted"], T0, T0 + 5 * MIN)
        held = hold(escalation, self.BY, incident, T0 + 5 * MIN)
        assert held.incident is not None
        assert held.incident.paged == ("pager",)
        assert held.pages == ()
        [deferred] = held.timers
        assert deferred.payload["step"] == 1

    def test_an_acknowledged_incident_defers_no_step(self) -> None:
        incident = stored(opened("pool-exhausted"), 13)
        acked = decide_ack(incident, "maria", "api", None, T0)
        assert not would_page(acked)
        assert hold(acked, self.BY, incident, T0).timers == ()

    @pytest.mark.parametrize(
        ("decision", "expected"),
        [
            pytest.param(opened("pool-exhausted"), True, id="opening-pages"),
            pytest.param(Decision(DecisionReason.NOTHING_NEW), False, id="nothing"),
            pytest.param(
                decide_resolve(stored(opened("pool-exhausted"), 1), "maria", "fixed", T0),
                False,
                id="a-resolution-tells-those-paged",
            ),
        ],
    )
    def test_would_page(self, decision: Decision, expected: bool) -> None:
        assert would_page(decision) is expected


class TestCover:
    def test_an_ack_names_the_incidents_it_covers(self) -> None:
        cause = stored(opened(CAUSE), 12)
        acked = cover(decide_ack(cause, "maria", "api", None, T0), [14, 13])
        [line] = acked.timeline
        assert line.detail == {"by": "maria", "via": "api", "covers": [13, 14]}
        [page] = acked.pages
        assert page.event is PageEvent.ACKNOWLEDGED
        assert page.summary == "Covers #13, #14."

    def test_a_resolution_says_the_covered_ones_page_on_their_own(self) -> None:
        cause = stored(opened(CAUSE), 12)
        resolved = cover(decide_resolve(cause, "maria", "fixed", T0), [13])
        assert resolved.timeline[0].detail["covers"] == [13]
        assert resolved.pages[0].summary == (
            "Covers #13, still open: they page on their own from now on."
        )

    @pytest.mark.parametrize(
        "decision",
        [
            pytest.param(opened(CAUSE), id="an-opening"),
            pytest.param(Decision(DecisionReason.ALREADY_ACKNOWLEDGED), id="a-no-op"),
        ],
    )
    def test_other_decisions_are_left_alone(self, decision: Decision) -> None:
        assert cover(decision, [13]) == decision

    def test_nothing_covered_leaves_the_ack_alone(self) -> None:
        acked = decide_ack(stored(opened(CAUSE), 12), "maria", "api", None, T0)
        assert cover(acked, []) == acked
        assert acked.pages[0].summary is None


def test_superseding_rules_decide_first() -> None:
    order = decision_order(RULES)
    assert order == {"everything": 0, CAUSE: 1, "pool-exhausted": 2, "checkout-errors": 2}


def test_the_held_incident_state_is_kept() -> None:
    held = hold(opened("checkout-errors"), party(12, CAUSE), None, T0)
    assert held.incident is not None
    assert held.incident.state is IncidentState.TRIGGERED
    assert held.opened


SHARED = """\
channels:
  - name: pager
    type: webhook
    url: http://127.0.0.1:8080/page
escalation_policies:
  - name: oncall
    steps:
      - notify: [pager]
rules:
  - name: pool
    match: ['alertname="Pool"']
    group_by: [cluster, database]
    severity: critical
    title: Pool
  - name: checkout
    match: ['alertname="Checkout"']
    group_by: [cluster]
    severity: critical
    title: Checkout
"""


def load_errors(tmp_path: Path, rules: str) -> list[str]:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "shop.yml").write_text(SHARED + rules, encoding="utf-8")
    with pytest.raises(RulesInvalid) as raised:
        load_ruleset(directory)
    prefix = f"{directory / 'shop.yml'}:"
    return [str(e).removeprefix(prefix) for e in raised.value.errors if ".supersedes" in e.field]


CAUSE_RULE = """\
  - name: cause
    match: ['alertname="Cause"']
    group_by: [cluster]
    severity: critical
    title: Cause
"""


class TestChecks:
    @pytest.mark.parametrize(
        ("supersedes", "expected"),
        [
            pytest.param(
                "{rules: [pool, nope]}",
                ["25: rules[2].supersedes.rules[1]: unknown rule 'nope'"],
                id="unknown-rule",
            ),
            pytest.param(
                "{rules: [cause]}",
                ["25: rules[2].supersedes.rules[0]: a rule cannot supersede itself"],
                id="itself",
            ),
            pytest.param(
                "{rules: [pool, checkout], equal: [cluster, database]}",
                [
                    "25: rules[2].supersedes.equal[1]: 'database' is not in group_by of cause,"
                    " checkout: both incidents' group labels must carry it"
                ],
                id="equal-not-grouped-by",
            ),
            pytest.param(
                "{rules: []}",
                [
                    "25: rules[2].supersedes.rules: Tuple should have at least 1 item after"
                    " validation, not 0"
                ],
                id="empty",
            ),
            pytest.param(
                "{rules: [pool], inhibit: true}",
                ["25: rules[2].supersedes.inhibit: unknown field"],
                id="unknown-key",
            ),
        ],
    )
    def test_refused(self, tmp_path: Path, supersedes: str, expected: list[str]) -> None:
        rules = CAUSE_RULE + f"    supersedes: {supersedes}\n"
        assert load_errors(tmp_path, rules) == expected

    def test_a_cycle_is_refused_on_every_rule_in_it(self, tmp_path: Path) -> None:
        other = CAUSE_RULE.replace("cause", "other").replace("Cause", "Other")
        rules = (
            f"{CAUSE_RULE}    supersedes: {{rules: [other]}}\n"
            f"{other}    supersedes: {{rules: [cause]}}\n"
        )
        assert load_errors(tmp_path, rules) == [
            "25: rules[2].supersedes.rules[0]: supersedes itself around a cycle:"
            " cause supersedes other supersedes cause",
            "31: rules[3].supersedes.rules[0]: supersedes itself around a cycle:"
            " other supersedes cause supersedes other",
        ]

    def test_the_shipped_pack_supersedes_the_symptoms_of_pool_exhaustion(self) -> None:
        shipped = load_ruleset(Path(__file__).resolve().parents[2] / "rules")
        combined = shipped.rules["checkout-failing-db-pool-exhausted"].supersedes
        assert combined is not None
        assert set(combined.rules) >= {"db-connection-pool-exhausted", "checkout-error-spike"}
        assert combined.equal == ("cluster",)
