"""The running rule set and the pure routing of a signal to the rules it belongs to."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps of a str, less overhead

from detector.domain.model import Signal
from detector.probes.journey import JourneySpec
from detector.ruleset.channel_specs import SharedChannel, Target
from detector.ruleset.maintenance import (
    ActiveWindow,
    MaintenanceWindowSpec,
    SilenceSpec,
    active_window,
)
from detector.ruleset.matchers import Matcher, MatchOp, matches_all
from detector.ruleset.notice_rules import NoticePolicySpec
from detector.ruleset.oncall_specs import PersonSpec
from detector.ruleset.positions import RuleError
from detector.ruleset.schema import ComponentSpec, RuleSpec
from responders.channels.recipients import contact_method
from responders.escalation import EscalationPolicy
from responders.notices.templates import NoticeTemplates, default_templates
from responders.oncall.model import Schedule

_LITERAL_ALTERNATION = re.compile(r"[A-Za-z0-9_:]+(?:\|[A-Za-z0-9_:]+)*")
_MEMO_LIMIT = 10_000
ROUTES_REMEMBERED = 50_000
"""Signals whose routes :meth:`RuleSet.route_once` keeps at most, the oldest forgotten first:
more than a storm's group backlog holds, at a few hundred bytes each."""
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
    channels: Mapping[str, SharedChannel]
    policies: Mapping[str, EscalationPolicy]
    windows: tuple[SilenceSpec | MaintenanceWindowSpec, ...] = ()
    files: tuple[str, ...] = ()
    journeys: Mapping[str, JourneySpec] = field(default_factory=dict)
    notice_policy: NoticePolicySpec = field(default_factory=NoticePolicySpec)
    notice_templates: NoticeTemplates = field(default_factory=default_templates)
    people: Mapping[str, PersonSpec] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    warnings: tuple[RuleError, ...] = field(default=(), compare=False)
    """Valid but likely mistakes, such as nobody on call soon (``rules check`` prints them)."""
    _candidates: dict[str, tuple[RuleSpec, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _endpoints: dict[str, Target] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _routes: dict[Hashable, list[RuleMatch]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def route(self, signal: Signal) -> list[RuleMatch]:
        """Every rule whose matchers accept the signal's labels, with its grouping."""
        matches = []
        for rule in self.candidates(signal.labels.get("alertname", "")):
            if sees(rule, signal.labels):
                labels = group_labels(rule, signal.labels)
                matches.append(RuleMatch(rule, group_key(labels), labels))
        return matches

    def route_once(self, key: Hashable, signal: Signal) -> list[RuleMatch]:
        """:meth:`route`, remembered under ``key`` (which must stand for the signal's labels)
        while this rule set runs: a signal the engine carries in a group's backlog is routed when
        it is stored and again when its turn comes, cycles later; in a storm the second routing
        cost a tenth of the signal stage. A reload makes a new rule set, which routes afresh."""
        matches = self._routes.get(key)
        if matches is None:
            matches = self._routes[key] = self.route(signal)
            if len(self._routes) > ROUTES_REMEMBERED:
                del self._routes[next(iter(self._routes))]
        return matches

    def candidates(self, alertname: str) -> tuple[RuleSpec, ...]:
        """The rules that can possibly see an alert of this name, in file order (memoised:
        most rules name their alerts, so each alert is checked against one or two rules)."""
        known = self._candidates.get(alertname)
        if known is None:
            known = tuple(
                rule
                for rule in self.rules.values()
                if (names := alertnames(rule)) is None or alertname in names
            )
            if len(self._candidates) < _MEMO_LIMIT:
                self._candidates[alertname] = known
        return known

    def maintenance(
        self, rule: str, labels: Mapping[str, str], now: datetime
    ) -> ActiveWindow | None:
        """The silence or maintenance window muting this rule's pages now, if any."""
        return active_window(self.windows, rule, labels, now)

    def every_channel(self) -> dict[str, Target]:
        """Every endpoint a page can be delivered to, by outbox key: the shared channels by
        name, and each person's contact methods as ``person:<id>:<index>``."""
        endpoints: dict[str, Target] = dict(self.channels)
        for person in self.people.values():
            for index, method in enumerate(person.contact_methods):
                endpoints[contact_method(person.id, index)] = method
        return endpoints

    def endpoint(self, key: str) -> Target | None:
        """The endpoint an outbox key names, from :meth:`every_channel` worked out once per
        rule set (delivery asks for every message it records)."""
        if not self._endpoints:
            self._endpoints.update(self.every_channel())
        return self._endpoints.get(key)

    def contact_keys(self, person: str) -> tuple[str, ...]:
        """The outbox keys of ``person``'s contact methods, in order (none for a stranger)."""
        spec = self.people.get(person)
        methods = spec.contact_methods if spec is not None else ()
        return tuple(contact_method(person, index) for index in range(len(methods)))

    def policy_for(self, rule: RuleSpec) -> EscalationPolicy | None:
        """The escalation policy a rule pages, if any."""
        return self.policies.get(rule.escalation_policy) if rule.escalation_policy else None


def alertnames(rule: RuleSpec) -> frozenset[str] | None:
    """The alert names a rule can see, or None when its matchers do not pin them down."""
    names = _selector_names(rule.match)
    if names is None and rule.all_of:
        parts = [_selector_names(selector) for selector in rule.all_of]
        names = None if None in parts else frozenset().union(*(p for p in parts if p))
    if rule.absent is not None and names is not None:
        expected = _selector_names(rule.absent.expect)
        names = None if expected is None else names | expected
    return names


def _selector_names(selector: tuple[Matcher, ...]) -> frozenset[str] | None:
    for matcher in selector:
        if matcher.name != "alertname":
            continue
        if matcher.op is MatchOp.EQUAL:
            return frozenset({matcher.value})
        if matcher.op is MatchOp.REGEX and _LITERAL_ALTERNATION.fullmatch(matcher.value):
            return frozenset(matcher.value.split("|"))
    return None


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
    body = ", ".join(f"{name}={_quoted(value)}" for name, value in sorted(labels.items()))
    return "{" + body + "}"
