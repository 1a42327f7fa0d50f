"""Apply the rules' ``supersedes:`` to a decision, in the caller's transaction.

``settle`` runs before the decision is stored: it looks up the open incidents that could
supersede the decision's incident (one indexed query by rule name, only for a decision that
would page and a rule something supersedes), holds the pages if one does, and names the open
incidents an ack or resolution covers. ``record`` runs after: it links the incidents (the
stored id of a new incident is known by then), and when a superseding incident resolves it
releases the escalations it deferred. The decisions are ``domain.superseding``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from detector.domain.model import Decision, Incident
from detector.domain.superseding import (
    Party,
    cover,
    covered,
    hold,
    names_covered,
    opens,
    superseded_rules,
    superseders,
    superseding_rules,
    would_page,
)
from detector.ruleset.rules import RuleSet
from detector.store import supersedes as supersedes_store
from detector.store import timers as timers_table
from detector.store.connection import Connection

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Settled:
    """The decision to store, and the open incidents to link its incident to once stored."""

    decision: Decision
    above: tuple[Party, ...] = ()
    """Open incidents superseding the decision's incident."""
    below: tuple[Party, ...] = ()
    """Open incidents the decision's (superseding) incident covers."""


async def settle(
    connection: Connection,
    rules: RuleSet,
    decision: Decision,
    before: Incident | None,
    now: datetime,
) -> Settled:
    """Hold the decision's pages while a superseding incident is open, and find the open
    incidents a superseding incident covers when it opens, reopens, is acknowledged or
    resolves. ``before`` is the incident as it was."""
    incident = decision.incident
    if incident is None:
        return Settled(decision)
    above: list[Party] = []
    above_rules = superseding_rules(rules, incident.rule)
    if above_rules and would_page(decision):
        candidates = await supersedes_store.open_of_rules(connection, list(above_rules))
        above = superseders(incident, candidates, rules)
        if above:
            decision = hold(decision, above[0], before, now)
    below: list[Party] = []
    below_rules = superseded_rules(rules, incident.rule)
    if below_rules and opens(decision):
        candidates = await supersedes_store.open_of_rules(connection, below_rules)
        below = covered(incident, candidates, rules)
    elif below_rules and incident.id is not None and names_covered(decision):
        decision = cover(decision, await supersedes_store.covered_open(connection, incident.id))
    return Settled(decision, tuple(above), tuple(below))


async def record(
    connection: Connection, settled: Settled, incident_id: int | None, now: datetime
) -> None:
    """Link the stored incident to those ``settle`` found; a resolved one releases what it
    deferred, each decided again by the timer stage."""
    incident = settled.decision.incident
    if incident is None or incident_id is None:
        return
    me = Party.of(incident, incident_id)
    pairs = [(above, me) for above in settled.above] + [(me, below) for below in settled.below]
    new = await supersedes_store.link(connection, pairs, now)
    if new:
        log.info(
            "incident.superseded",
            pairs=[[above.id, below.id] for above, below in new],
        )
    if settled.decision.resolved:
        released = await timers_table.release_superseded(connection, incident_id, now)
        if released:
            log.info("incident.supersession_ended", incident=incident_id, released=released)
