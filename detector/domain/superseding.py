"""One outage, one page: while an incident of a superseding rule is open, the incidents of the
rules it supersedes (whose group labels agree on its ``equal`` labels) are recorded but page
nobody.

The model is Alertmanager's inhibit rules (source, target, equal), keyed on open incidents
instead of firing alerts. Like a silence (``muting``), a superseded decision keeps its state
change and timeline, drops its pages and defers the current escalation step. The deferred step
names the superseding incident (``superseded_by``), so resolving that one makes the step due at
once, and carries ``held_by``, so a rules reload decides it again as it does a window's. The
engine (``engine/superseding.py``) loads the incidents these functions choose among;
``stormwatch rules test`` keeps them in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from detector.domain.model import (
    Decision,
    Incident,
    IncidentState,
    TimelineEntry,
    TimerKind,
    TimerSpec,
)
from detector.domain.muting import DEFERRED_BY, hold_pages
from detector.domain.reasons import DecisionReason
from detector.ruleset.rules import RuleSet
from responders.messages import PageEvent

SUPERSEDED_BY = "superseded_by"
"""The payload key of a deferred escalation naming the superseding incident's id (stored; the
SQL that releases it when that incident resolves looks for it)."""
RECHECK_AFTER = timedelta(hours=24)
"""When a deferred step is decided again at the latest. The superseding incident's resolution
(or a rules reload) releases it long before; this only bounds what a lost release would cost."""
SUPERSEDED_KIND = "incident.superseded"
SUPERSEDES_KIND = "incident.supersedes"
DEFERRED_KIND = "pages.deferred"
_OPENING = {
    DecisionReason.OPENED,
    DecisionReason.OPENED_AND_RESOLVED,
    DecisionReason.REOPENED,
    DecisionReason.REOPENED_AND_RESOLVED,
}


@dataclass(frozen=True, slots=True)
class Party:
    """An incident on either side of a supersession: what matching and timeline lines need."""

    id: int
    rule: str
    title: str
    group_labels: Mapping[str, str]

    @classmethod
    def of(cls, incident: Incident, incident_id: int) -> Party:
        """The incident stored as ``incident_id``."""
        return cls(incident_id, incident.rule, incident.title, incident.group_labels)


def superseding_rules(rules: RuleSet, rule: str) -> dict[str, tuple[str, ...]]:
    """The rules that supersede ``rule``, each with its ``equal`` labels."""
    return {
        other.name: other.supersedes.equal
        for other in rules.rules.values()
        if other.supersedes is not None and rule in other.supersedes.rules
    }


def superseded_rules(rules: RuleSet, rule: str) -> tuple[str, ...]:
    """The rules ``rule`` supersedes (none when it is gone or supersedes nothing)."""
    spec = rules.rules.get(rule)
    return () if spec is None or spec.supersedes is None else spec.supersedes.rules


def agree(equal: Iterable[str], first: Mapping[str, str], second: Mapping[str, str]) -> bool:
    """Whether two group label sets have the same value of every ``equal`` label (a missing one
    counts as empty, as in Alertmanager)."""
    return all(first.get(label, "") == second.get(label, "") for label in equal)


def superseders(incident: Incident, open_incidents: Iterable[Party], rules: RuleSet) -> list[Party]:
    """Of the open incidents given, those whose rule supersedes ``incident``'s and whose group
    labels agree with its own, oldest first."""
    above = superseding_rules(rules, incident.rule)
    found = [
        other
        for other in open_incidents
        if other.rule in above
        and other.id != incident.id
        and agree(above[other.rule], other.group_labels, incident.group_labels)
    ]
    return sorted(found, key=lambda other: other.id)


def covered(incident: Incident, open_incidents: Iterable[Party], rules: RuleSet) -> list[Party]:
    """Of the open incidents given, those ``incident`` supersedes, oldest first."""
    spec = rules.rules.get(incident.rule)
    if spec is None or spec.supersedes is None:
        return []
    below, equal = spec.supersedes.rules, spec.supersedes.equal
    found = [
        other
        for other in open_incidents
        if other.rule in below
        and other.id != incident.id
        and agree(equal, incident.group_labels, other.group_labels)
    ]
    return sorted(found, key=lambda other: other.id)


def would_page(decision: Decision) -> bool:
    """Whether a decision calls someone now or schedules the next step: what an open
    superseding incident holds back (follow-ups to those already paged go out)."""
    return any(page.event.needs_ack for page in decision.pages) or any(
        timer.kind is TimerKind.ESCALATE for timer in decision.timers
    )


def opens(decision: Decision) -> bool:
    """Whether a decision opens or reopens its incident: when a superseding one looks for the
    open incidents it covers."""
    return decision.reason in _OPENING


def names_covered(decision: Decision) -> bool:
    """Whether a decision is an ack or a resolution: what names the incidents it covers."""
    return decision.reason is DecisionReason.ACKNOWLEDGED or decision.resolved


def hold(decision: Decision, by: Party, before: Incident | None, now: datetime) -> Decision:
    """The decision with its pages held while ``by`` is open: dropped, and the current step
    deferred until ``by`` resolves (``before`` is the incident as it was, see ``hold_pages``)."""
    incident = decision.incident
    if incident is None:
        return decision
    resume = None
    if incident.state is IncidentState.TRIGGERED:
        payload = {
            "step": incident.escalation_step,
            DEFERRED_BY: f"incident #{by.id}",
            SUPERSEDED_BY: by.id,
        }
        resume = TimerSpec(TimerKind.ESCALATE, now + RECHECK_AFTER, payload)
    entry = TimelineEntry(
        DEFERRED_KIND,
        now,
        {"by": by.id, "rule": by.rule, "channels": [page.channel for page in decision.pages]},
    )
    return hold_pages(decision, incident, before, resume, entry)


def cover(decision: Decision, covered_ids: Sequence[int]) -> Decision:
    """An ack or resolution of a superseding incident names the open incidents it covers: on
    its timeline line (``covers``) and in the summary of its follow-up pages."""
    incident = decision.incident
    if incident is None or not covered_ids or not names_covered(decision):
        return decision
    ids = sorted(covered_ids)
    kinds = {"incident.acknowledged", "incident.resolved"}
    timeline = tuple(
        replace(entry, detail={**entry.detail, "covers": ids}) if entry.kind in kinds else entry
        for entry in decision.timeline
    )
    summary = f"{incident.summary} {covers_note(ids, resolved=decision.resolved)}".strip()
    follow_ups = {PageEvent.ACKNOWLEDGED, PageEvent.RESOLVED}
    pages = tuple(
        replace(page, summary=summary) if page.event in follow_ups else page
        for page in decision.pages
    )
    return replace(decision, timeline=timeline, pages=pages)


def covers_note(ids: Sequence[int], *, resolved: bool) -> str:
    """``Covers #13, #14.``; a resolution adds that those page on their own from now on."""
    named = ", ".join(f"#{incident_id}" for incident_id in ids)
    if resolved:
        return f"Covers {named}, still open: they page on their own from now on."
    return f"Covers {named}."


def link_entries(
    superseding: Party, superseded: Party, now: datetime
) -> tuple[tuple[int, TimelineEntry], tuple[int, TimelineEntry]]:
    """The timeline line each side of a new link gets: (incident id, entry naming the other)."""
    return (
        (
            superseded.id,
            TimelineEntry(
                SUPERSEDED_KIND,
                now,
                {"by": superseding.id, "rule": superseding.rule, "title": superseding.title},
            ),
        ),
        (
            superseding.id,
            TimelineEntry(
                SUPERSEDES_KIND,
                now,
                {"incident": superseded.id, "rule": superseded.rule, "title": superseded.title},
            ),
        ),
    )


def decision_order(rules: RuleSet) -> dict[str, int]:
    """A rank per rule, superseding rules lower than the rules they supersede: a batch decides
    its groups in this order, so an outage whose alerts arrive together opens the superseding
    incident first and its symptoms never page. Cycles are refused by the loader; a rule met
    again on its own path is ranked as it stands."""
    ranks: dict[str, int] = {}

    def rank(rule: str, path: frozenset[str]) -> int:
        if rule not in ranks:
            above = [r for r in superseding_rules(rules, rule) if r not in path]
            ranks[rule] = 1 + max((rank(r, path | {rule}) for r in above), default=-1)
        return ranks[rule]

    for name in rules.rules:
        rank(name, frozenset())
    return ranks
