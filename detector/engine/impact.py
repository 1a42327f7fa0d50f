"""Which incidents have their business impact measured, and what it is so far.

An incident whose rule (or, failing that, its component) names ``impact`` queries gets an
impact refresh timer in the transaction that opens it (:func:`with_impact`); the impact stage
(``impact_stage``) measures it every minute from then until the incident resolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from detector.domain.impact import NOT_CONFIGURED, Impact, ImpactSample, estimate
from detector.domain.model import Decision, TimerKind, TimerSpec
from detector.ruleset.impact_rules import ImpactSpec
from detector.ruleset.rules import RuleSet
from detector.store import impact as impact_store
from detector.store.connection import Connection


def impact_spec(rules: RuleSet, rule_name: str, component: str | None) -> ImpactSpec | None:
    """The rule's impact queries, else its component's, else None."""
    rule = rules.rules.get(rule_name)
    if rule is not None and rule.impact is not None:
        return rule.impact
    spec = rules.components.get(component or "")
    return None if spec is None else spec.impact


def with_impact(decision: Decision, rules: RuleSet, now: datetime) -> Decision:
    """``decision`` with a first impact refresh, due at once, when it opens a measured incident."""
    incident = decision.incident
    if not decision.opened or incident is None:
        return decision
    if impact_spec(rules, incident.rule, incident.component) is None:
        return decision
    refresh = TimerSpec(TimerKind.IMPACT_REFRESH, now)
    return replace(decision, timers=(*decision.timers, refresh))


async def current_impact(
    connection: Connection,
    rules: RuleSet,
    incident_id: int,
    rule_name: str,
    component: str | None,
    opened_at: datetime,
) -> Impact:
    """What the incident has cost so far (not configured, unknown with the reason, or figures)."""
    samples = await impact_store.samples(connection, incident_id)
    return impact_of(rules, rule_name, component, opened_at, samples)


def impact_of(
    rules: RuleSet,
    rule_name: str,
    component: str | None,
    opened_at: datetime,
    samples: Sequence[ImpactSample],
) -> Impact:
    """The impact ``samples`` add up to; not configured when nothing was ever asked for."""
    if not samples and impact_spec(rules, rule_name, component) is None:
        return NOT_CONFIGURED
    return estimate(opened_at, samples)
