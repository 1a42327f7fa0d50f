"""Routing a signal to rules: the alert-name index must never change which rules see it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from detector.domain.grouping import to_attached_incidents
from detector.domain.model import AlertStatus, Signal, Source
from detector.ruleset import rules as rules_module
from detector.ruleset.rules import RuleSet, alertnames, sees
from detector.ruleset.schema import RuleSpec
from detector.store.signals import Holder

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def rule(name: str, **fields: Any) -> RuleSpec:
    return RuleSpec.model_validate({"name": name, "severity": "major", "title": name, **fields})


RULES = [
    rule("exact", match=['alertname="PgBouncerPoolSaturated"']),
    rule("alternation", match=['alertname=~"PatroniNoPrimary|PatroniNoLeaderLock"']),
    rule("pattern", match=['alertname=~"Postfix.*"']),
    rule("by-label", match=['service="checkout"']),
    rule("negated", match=['alertname!="Watchdog"', 'severity="page"']),
    rule(
        "absent",
        match=['alertname="PostgresNoPrimary"'],
        absent={"expect": ['alertname="PostgresFailoverHappened"'], "within": "1m"},
    ),
    rule(
        "all-of",
        all_of=[['alertname="PgBouncerPoolSaturated"'], ['alertname="CheckoutErrorSpike"']],
    ),
]
RULE_SET = RuleSet(rules={r.name: r for r in RULES}, components={}, channels={}, policies={})


def signal(**labels: str) -> Signal:
    return Signal(
        Source.ALERTMANAGER,
        labels.get("alertname", ""),
        "f",
        AlertStatus.FIRING,
        T0,
        None,
        labels,
        {},
        T0,
    )


class TestAlertnames:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            pytest.param("exact", {"PgBouncerPoolSaturated"}, id="equality"),
            pytest.param(
                "alternation", {"PatroniNoPrimary", "PatroniNoLeaderLock"}, id="literal alternation"
            ),
            pytest.param("pattern", None, id="real regex: any name"),
            pytest.param("by-label", None, id="no alertname matcher"),
            pytest.param("negated", None, id="negative matcher"),
            pytest.param(
                "absent",
                {"PostgresNoPrimary", "PostgresFailoverHappened"},
                id="absent adds expected",
            ),
            pytest.param(
                "all-of", {"PgBouncerPoolSaturated", "CheckoutErrorSpike"}, id="all_of selectors"
            ),
        ],
    )
    def test_names_a_rule_can_see(self, name: str, expected: set[str] | None) -> None:
        names = alertnames(RULE_SET.rules[name])
        assert (None if names is None else set(names)) == expected


class TestRoute:
    @pytest.mark.parametrize(
        "labels",
        [
            pytest.param({"alertname": "PgBouncerPoolSaturated", "severity": "page"}, id="pool"),
            pytest.param({"alertname": "PatroniNoLeaderLock"}, id="patroni"),
            pytest.param(
                {"alertname": "PostfixQueueStale", "service": "checkout"}, id="postfix checkout"
            ),
            pytest.param({"alertname": "PostgresFailoverHappened"}, id="expected of absent"),
            pytest.param({"alertname": "CheckoutErrorSpike", "severity": "page"}, id="all_of side"),
            pytest.param({"alertname": "Watchdog", "severity": "page"}, id="watchdog"),
            pytest.param({"service": "checkout"}, id="no alertname"),
        ],
    )
    def test_index_routes_exactly_like_checking_every_rule(self, labels: dict[str, str]) -> None:
        every_rule = [r.name for r in RULES if sees(r, labels)]
        routed = [m.rule.name for m in RULE_SET.route(signal(**labels))]
        assert routed == every_rule
        assert routed == [m.rule.name for m in RULE_SET.route(signal(**labels))], "memoised"


class TestRouteOnce:
    def test_a_signal_is_routed_once_while_the_rule_set_runs(self) -> None:
        rules = RuleSet(rules={r.name: r for r in RULES}, components={}, channels={}, policies={})
        pool = signal(alertname="PgBouncerPoolSaturated", severity="page")
        first = rules.route_once("pool", pool)
        assert first == rules.route(pool)
        assert rules.route_once("pool", pool) is first, "remembered, not routed again"

    def test_the_oldest_route_is_forgotten_past_the_bound(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(rules_module, "ROUTES_REMEMBERED", 2)
        rules = RuleSet(rules={r.name: r for r in RULES}, components={}, channels={}, policies={})
        pool = signal(alertname="PgBouncerPoolSaturated")
        kept = {key: rules.route_once(key, pool) for key in ("a", "b", "c")}
        assert rules.route_once("c", pool) is kept["c"]
        assert rules.route_once("a", pool) is not kept["a"], "routed afresh"


class TestToAttachedIncidents:
    """An open incident an alert is attached to keeps receiving it, whatever the rules route
    now."""

    POOL = signal(alertname="PgBouncerPoolSaturated", cluster="eu-1", service="checkout")
    AS_ROUTED = (("exact", "{}"), ("by-label", "{}"), ("all-of", "{}"))

    @pytest.mark.parametrize(
        ("holders", "expected"),
        [
            pytest.param((), {*AS_ROUTED}, id="held by none: as routed"),
            pytest.param(
                (Holder("exact", "cluster=eu-1", {"cluster": "eu-1"}),),
                {("exact", "cluster=eu-1"), ("by-label", "{}"), ("all-of", "{}")},
                id="held under another group key: that incident's key",
            ),
            pytest.param(
                (Holder("pattern", "k", {}),),
                {*AS_ROUTED, ("pattern", "k")},
                id="held by a rule that no longer matches: still delivered",
            ),
            pytest.param(
                (Holder("deleted-rule", "k", {}),),
                {*AS_ROUTED},
                id="held under a rule that is gone: as routed",
            ),
        ],
    )
    def test_routes(self, holders: tuple[Holder, ...], expected: set[tuple[str, str]]) -> None:
        matches = to_attached_incidents(RULE_SET.route(self.POOL), holders, RULE_SET)
        assert {(m.rule.name, m.group_key) for m in matches} == expected
        assert len(matches) == len(expected)
