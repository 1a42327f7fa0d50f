"""The running rule set and the pure routing of a signal to the rules it belongs to."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from detector.model import Signal
from detector.ruleset.maintenance import (
    ActiveWindow,
    MaintenanceWindowSpec,
    SilenceSpec,
    active_window,
)
from detector.ruleset.matchers import matches_all
from detector.ruleset.schema import ComponentSpec, RuleSpec, WebhookChannelSpec
from responders.escalation import EscalationPolicy

ALL_LABELS = "..."
"""``group_by: ['...']`` groups by every label, as in Alertmanager."""


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A signal that belongs to ``rule``'s incident for ``group_key``."""

    rule: RuleSpec
    group_key: str
    group_labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Validated rules, components, channels and escalation policies, swapped as one unit."""

    rules: Mapping[str, RuleSpec]
    components: Mapping[str, ComponentSpec]
    channels: Mapping[str, WebhookChannelSpec]
    policies: Mapping[str, EscalationPolicy]
    windows: tuple[SilenceSpec | MaintenanceWindowSpec, ...] = ()
    files: tuple[str, ...] = ()

    def route(self, signal: Signal) -> list[RuleMatch]:
        """Every rule whose matchers accept the signal's labels, with its grouping."""
        matches = []
        for rule in self.rules.values():
            if sees(rule, signal.labels):
                labels = group_labels(rule, signal.labels)
                matches.append(RuleMatch(rule, group_key(labels), labels))
        return matches

    def maintenance(
        self, rule: str, labels: Mapping[str, str], now: datetime
    ) -> ActiveWindow | None:
        """The silence or maintenance window muting this rule's pages now, if any."""
        return active_window(self.windows, rule, labels, now)

    def policy_for(self, rule: RuleSpec) -> EscalationPolicy | None:
        """The escalation policy a rule pages, if any."""
        return self.policies.get(rule.escalation_policy) if rule.escalation_policy else None


def sees(rule: RuleSpec, labels: Mapping[str, str]) -> bool:
    """Whether a rule needs to see an alert: its matchers, plus what its condition watches."""
    if rule.absent is not None and matches_all(rule.absent.expect, labels):
        return True
    if not matches_all(rule.match, labels):
        return False
    return rule.all_of is None or any(matches_all(s, labels) for s in rule.all_of)


def group_labels(rule: RuleSpec, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that identify the incident a signal joins (missing ones count as empty)."""
    if ALL_LABELS in rule.group_by:
        return dict(sorted(labels.items()))
    return {name: labels.get(name, "") for name in rule.group_by}


def group_key(labels: Mapping[str, str]) -> str:
    """A stable text key for a set of group labels, in Alertmanager's ``{a="b"}`` style."""
    body = ", ".join(f"{name}={json.dumps(value)}" for name, value in sorted(labels.items()))
    return "{" + body + "}"
