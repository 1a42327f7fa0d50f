"""Escalation as pure decisions: which step pages whom, when the next one is due, when the chain
runs again, what an ack timeout does, and which timer an open incident must always have.

Who a step reaches is resolved by the engine when the step fires (schedules, layers and
overrides as they are at that moment) and handed in as :class:`Reach`, so a handoff
mid-incident pages whoever is on call then. Nothing here reads a clock or a database.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from detector.domain.durations import format_duration
from detector.domain.model import (
    Decision,
    Incident,
    IncidentState,
    PageOrder,
    TimelineEntry,
    TimerKind,
    TimerSpec,
)
from detector.domain.reasons import DecisionReason
from responders.channels.recipients import contact_method, parse_contact
from responders.escalation import EscalationPolicy
from responders.messages import PageEvent

NOBODY_ON_CALL = "escalation.nobody_on_call"
"""The timeline entry of a step that reached nobody (and was passed over at once)."""
FIRST_PAGED = "incident.paged"
"""The timeline entry of the first step paging the people on call."""


@dataclass(frozen=True, slots=True)
class StepTargets:
    """Who one step reaches at the moment it fires: people (ids), shared channels, and the
    step's schedules that had nobody on call then."""

    people: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    empty_schedules: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """The outbox keys paged: each shared channel and each person's first contact method
        (a method that fails for good falls through to the next in delivery)."""
        return (*self.channels, *(contact_method(person, 0) for person in self.people))


@dataclass(frozen=True, slots=True)
class Reach:
    """What the engine resolved for an escalation timer: each step's targets now, and the
    people the rule files know (an acknowledger who is one is re-notified after an ack
    timeout)."""

    steps: tuple[StepTargets, ...] = ()
    people: frozenset[str] = frozenset()

    def at(self, policy: EscalationPolicy, step: int) -> StepTargets:
        """``step``'s targets; when the engine resolved none (a rule test), the step's own
        people and channels, its schedules left unresolved."""
        if step < len(self.steps):
            return self.steps[step]
        if step >= len(policy.steps):
            return StepTargets()
        spec = policy.steps[step]
        return StepTargets(spec.people, spec.channels)


class AuditProblem(StrEnum):
    """What the self-audit found missing on an open incident (a metric label)."""

    MISSING_ESCALATION = "missing_escalation"
    MISSING_ACK_TIMEOUT = "missing_ack_timeout"


@dataclass(frozen=True, slots=True)
class Repair:
    """The timer to schedule for what the audit found missing."""

    problem: AuditProblem
    timer: TimerSpec


def needs_people(policy: EscalationPolicy | None, step: int = 0) -> bool:
    """Whether ``step`` names people or schedules, whose on-call is resolved when it fires."""
    if policy is None or not 0 <= step < len(policy.steps):
        return False
    spec = policy.steps[step]
    return bool(spec.people or spec.schedules)


def first_step_now(now: datetime, event: PageEvent = PageEvent.TRIGGERED) -> TimerSpec:
    """The timer, due at once, that pages the first step of a new episode once the engine has
    resolved who is on call: the engine does so in the transaction that stores the decision
    (``page_first_step``), so the timer is what a decision made without a database (a rule
    test) keeps."""
    payload: dict[str, object] = {"step": 0, "round": 0}
    if event is not PageEvent.TRIGGERED:
        payload["event"] = event.value
    return TimerSpec(TimerKind.ESCALATE, now, payload)


def first_step_due(decision: Decision, now: datetime) -> TimerSpec | None:
    """The first-step timer due at once that ``decision`` carries, if any."""
    for timer in decision.timers:
        first = timer.payload.get("step") == 0 and timer.payload.get("round", 0) == 0
        if timer.kind is TimerKind.ESCALATE and first and timer.due_at <= now:
            return timer
    return None


def page_first_step(decision: Decision, timer: TimerSpec, reach: Reach, now: datetime) -> Decision:
    """``decision`` with the first step its ``timer`` would page paged now instead, as the timer
    would have (steps that reach nobody passed over, the next step's timer set)."""
    if decision.incident is None:
        return decision
    event = PageEvent(timer.payload.get("event", PageEvent.TRIGGERED))
    paged = escalate(decision.incident, (0, 0), reach, now, event)
    if paged.incident is None:
        return decision
    return replace(
        decision,
        incident=paged.incident,
        timeline=decision.timeline + paged.timeline,
        timers=tuple(t for t in decision.timers if t is not timer) + paged.timers,
        pages=decision.pages + paged.pages,
    )


def following(policy: EscalationPolicy, step: int, round_: int) -> tuple[int, int] | None:
    """The (step, round) after ``step`` of ``round_``: the next in the chain, else the first of
    the next round while ``repeat`` leaves one, else None."""
    if step + 1 < len(policy.steps):
        return step + 1, round_
    if round_ < policy.repeat:
        return 0, round_ + 1
    return None


def next_timer(
    policy: EscalationPolicy, step: int, round_: int, since: datetime
) -> TimerSpec | None:
    """The timer that moves on when ``step`` (paged at ``since``) goes unacknowledged; the
    last step's ``escalate_after`` is the wait before a repeat (without one, no repeat)."""
    position = following(policy, step, round_)
    wait = policy.steps[step].escalate_after if 0 <= step < len(policy.steps) else None
    if position is None or wait is None:
        return None
    return TimerSpec(TimerKind.ESCALATE, since + wait, {"step": position[0], "round": position[1]})


def escalate(
    incident: Incident,
    position: tuple[int, int],
    reach: Reach,
    now: datetime,
    event: PageEvent = PageEvent.TRIGGERED,
) -> Decision:
    """Page the step at ``position`` (step, round) or, where it reaches nobody, the first one
    after it that reaches someone, recording each step passed over; at the end of the chain
    with no repeats left, stop."""
    policy = incident.policy
    if incident.state is not IncidentState.TRIGGERED:
        return Decision(DecisionReason.NOT_TRIGGERED)
    if policy is None or position[0] >= len(policy.steps):
        return Decision(DecisionReason.NO_MORE_STEPS)
    passed: list[TimelineEntry] = []
    at: tuple[int, int] | None = position
    while at is not None:
        targets = reach.at(policy, at[0])
        if targets.keys:
            return _page_step(incident, at, targets, now, event, tuple(passed))
        position = at
        detail = {"step": at[0], "round": at[1], "schedules": list(targets.empty_schedules)}
        passed.append(TimelineEntry(NOBODY_ON_CALL, now, detail))
        at = following(policy, *at)
    stopped = replace(
        incident, escalation_step=position[0], escalation_round=position[1], escalated_at=now
    )
    return Decision(DecisionReason.NOBODY_ON_CALL, incident=stopped, timeline=tuple(passed))


def _page_step(
    incident: Incident,
    position: tuple[int, int],
    targets: StepTargets,
    now: datetime,
    event: PageEvent,
    passed: tuple[TimelineEntry, ...],
) -> Decision:
    step, round_ = position
    assert incident.policy is not None  # escalate checked it
    keys = targets.keys
    paged = replace(
        incident,
        escalation_step=step,
        escalation_round=round_,
        escalated_at=now,
        paged=tuple(dict.fromkeys((*incident.paged, *keys))),
    )
    first = position == (0, 0)
    detail = {
        "step": step,
        "round": round_,
        "people": list(targets.people),
        "channels": list(targets.channels),
    }
    entry = TimelineEntry(FIRST_PAGED if first else "incident.escalated", now, detail)
    timer = next_timer(incident.policy, step, round_, now)
    return Decision(
        DecisionReason.PAGED if first else DecisionReason.ESCALATED,
        incident=paged,
        timeline=(*passed, entry),
        timers=() if timer is None else (timer,),
        pages=tuple(PageOrder(key, event, step, round_) for key in keys),
    )


def ack_timer(incident: Incident) -> tuple[TimerSpec, ...]:
    """The ack-timeout timer an acknowledged incident has under a policy with ``ack_timeout``."""
    policy = incident.policy
    if policy is None or policy.ack_timeout is None or incident.acknowledged_at is None:
        return ()
    due = incident.acknowledged_at + policy.ack_timeout
    payload = {"step": incident.escalation_step, "round": incident.escalation_round}
    return (TimerSpec(TimerKind.ACK_TIMEOUT, due, payload),)


def acknowledger(by: str | None, people: Collection[str]) -> str | None:
    """The person who acknowledged, when ``by`` names a known one: their id, or the contact key
    the ack link they used was sent to."""
    if by is None:
        return None
    if by in people:
        return by
    address = parse_contact(by)
    return address.person if address is not None and address.person in people else None


def ack_timed_out(incident: Incident, reach: Reach, now: datetime) -> Decision:
    """Still unresolved ``ack_timeout`` after the ack: page the acknowledger again (else the
    current step's targets), trigger the incident again and go on escalating from the next
    step after the current step's delay."""
    policy = incident.policy
    if incident.state is not IncidentState.ACKNOWLEDGED or policy is None:
        return Decision(DecisionReason.NOT_ACKNOWLEDGED)
    step, round_ = incident.escalation_step, incident.escalation_round
    person = acknowledger(incident.acknowledged_by, reach.people)
    targets = StepTargets(people=(person,)) if person else reach.at(policy, step)
    keys = targets.keys
    again = replace(
        incident,
        state=IncidentState.TRIGGERED,
        epoch=incident.epoch + 1,
        acknowledged_at=None,
        acknowledged_by=None,
        escalated_at=now,
        paged=tuple(dict.fromkeys((*incident.paged, *keys))),
    )
    detail = {
        "acknowledged_by": incident.acknowledged_by,
        "after": format_duration(policy.ack_timeout) if policy.ack_timeout else "",
        "step": step,
        "people": list(targets.people),
        "channels": list(targets.channels),
    }
    timer = next_timer(policy, step, round_, now)
    return Decision(
        DecisionReason.ACK_TIMED_OUT,
        incident=again,
        timeline=(TimelineEntry("incident.ack_timeout", now, detail),),
        timers=() if timer is None else (timer,),
        pages=tuple(PageOrder(key, PageEvent.TRIGGERED, step, round_) for key in keys),
    )


def audit(incident: Incident, pending: Collection[TimerKind], now: datetime) -> Repair | None:
    """What an open incident lacks, given the kinds of its pending timers in its epoch.

    An unacknowledged incident needs its next escalation unless its chain is done (last step,
    repeats used up, or a step without a delay); an acknowledged one under an ``ack_timeout``
    needs its ack-timeout timer. The repair is due when the lost timer was, or now if that
    has passed, so the page still comes on time.
    """
    policy = incident.policy
    if policy is None or not incident.is_open:
        return None
    wanted: tuple[TimerSpec, ...]
    if incident.state is IncidentState.ACKNOWLEDGED:
        wanted, problem = ack_timer(incident), AuditProblem.MISSING_ACK_TIMEOUT
    else:
        problem = AuditProblem.MISSING_ESCALATION
        step, round_ = incident.escalation_step, incident.escalation_round
        if incident.escalated_at is None:  # the first step never resolved who to page
            wanted = (TimerSpec(TimerKind.ESCALATE, now, {"step": step, "round": round_}),)
        else:
            timer = next_timer(policy, step, round_, incident.escalated_at)
            wanted = () if timer is None else (timer,)
    if not wanted or wanted[0].kind in pending:
        return None
    return Repair(problem, replace(wanted[0], due_at=max(wanted[0].due_at, now)))
