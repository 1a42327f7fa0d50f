"""Escalation decisions: who a step pages, steps that reach nobody, repeats, ack timeouts, and
what the self-audit finds missing. Who is on call is handed in (``Reach``), as the engine
resolves it when a timer fires."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.domain.escalation import (
    AuditProblem,
    Reach,
    Repair,
    StepTargets,
    acknowledger,
    audit,
    following,
    next_timer,
)
from detector.domain.incidents import decide_ack, decide_signals, decide_timer
from detector.domain.model import (
    AlertStatus,
    Incident,
    IncidentState,
    PageOrder,
    Signal,
    Source,
    Timer,
    TimerKind,
    TimerSpec,
)
from detector.ruleset.rules import RuleMatch
from detector.ruleset.schema import RuleSpec
from responders.escalation import EscalationPolicy, EscalationStep
from responders.messages import PageEvent

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TRIGGERED, ACKNOWLEDGED = IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED
ESCALATE, ACK_TIMEOUT = TimerKind.ESCALATE, TimerKind.ACK_TIMEOUT

POLICY = EscalationPolicy(
    "checkout",
    (
        EscalationStep(schedules=("primary",), escalate_after=5 * MIN),
        EscalationStep(("sre-chat",), 10 * MIN, schedules=("secondary",)),
        EscalationStep(people=("carol",), escalate_after=15 * MIN),
    ),
    repeat=1,
    ack_timeout=30 * MIN,
)
ALICE, BOB, CAROL = "person:alice:0", "person:bob:0", "person:carol:0"
PEOPLE = frozenset({"alice", "bob", "carol"})


def reach(*steps: StepTargets) -> Reach:
    return Reach(steps, PEOPLE)


EVERYONE = reach(
    StepTargets(("alice",)),
    StepTargets(("bob",), ("sre-chat",)),
    StepTargets(("carol",)),
)
NOBODY_PRIMARY = reach(
    StepTargets(empty_schedules=("primary",)),
    StepTargets(("bob",), ("sre-chat",)),
    StepTargets(("carol",)),
)
NOBODY_AT_ALL = reach(
    StepTargets(empty_schedules=("primary",)),
    StepTargets(empty_schedules=("secondary",)),
    StepTargets(),
)


def incident(**overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "rule": "checkout-down",
        "group_key": "{}",
        "group_labels": {},
        "state": TRIGGERED,
        "severity": "critical",
        "title": "Checkout down",
        "summary": "",
        "component": "checkout",
        "policy": POLICY,
        "opened_at": T0,
        "last_signal_at": T0,
        "id": 7,
        "epoch": 2,
        "escalated_at": T0,
        **overrides,
    }
    return Incident(**fields)


def escalate_timer(step: int, round_: int | None = 0, epoch: int = 2) -> Timer:
    payload: dict[str, Any] = {"step": step} if round_ is None else {"step": step, "round": round_}
    return Timer(1, 7, ESCALATE, T0, epoch, payload)


def fire(timer: Timer, subject: Incident, now: datetime, resolved: Reach = EVERYONE) -> Any:
    return decide_timer(subject, timer, None, T0, now, resolved)


class TestEscalationStep:
    @pytest.mark.parametrize(
        ("timer", "resolved", "reason", "pages", "kinds", "position", "next_due"),
        [
            pytest.param(
                escalate_timer(0), EVERYONE, "paged", [ALICE], ["incident.paged"], (0, 0),
                (T0 + 5 * MIN, {"step": 1, "round": 0}),
                id="first step: the primary's on-call person at their first method",
            ),
            pytest.param(
                escalate_timer(1), EVERYONE, "escalated", ["sre-chat", BOB],
                ["incident.escalated"], (1, 0), (T0 + 10 * MIN, {"step": 2, "round": 0}),
                id="second step: its shared channel and the secondary's person",
            ),
            pytest.param(
                escalate_timer(2), EVERYONE, "escalated", [CAROL], ["incident.escalated"],
                (2, 0), (T0 + 15 * MIN, {"step": 0, "round": 1}),
                id="last step: its delay is the wait before the repeat",
            ),
            pytest.param(
                escalate_timer(2, 1), EVERYONE, "escalated", [CAROL], ["incident.escalated"],
                (2, 1), None,
                id="last step of the last round: the chain is done",
            ),
            pytest.param(
                escalate_timer(0), NOBODY_PRIMARY, "escalated", ["sre-chat", BOB],
                ["escalation.nobody_on_call", "incident.escalated"], (1, 0),
                (T0 + 10 * MIN, {"step": 2, "round": 0}),
                id="nobody on the primary: recorded, the next step paged at once",
            ),
            pytest.param(
                escalate_timer(0, 1), NOBODY_AT_ALL, "nobody_on_call", [],
                ["escalation.nobody_on_call"] * 3, (2, 1), None,
                id="nobody anywhere in the last round: each step recorded, then stop",
            ),
            pytest.param(
                escalate_timer(2), NOBODY_AT_ALL, "nobody_on_call", [],
                ["escalation.nobody_on_call"] * 4, (2, 1), None,
                id="nobody at the last step with a repeat left: the repeat runs at once",
            ),
            pytest.param(
                escalate_timer(1, None), EVERYONE, "escalated", ["sre-chat", BOB],
                ["incident.escalated"], (1, 0), (T0 + 10 * MIN, {"step": 2, "round": 0}),
                id="a timer from before rounds (or a window's) is in the incident's round",
            ),
        ],
    )  # fmt: skip
    def test_pages_whoever_the_step_reaches_now(
        self,
        timer: Timer,
        resolved: Reach,
        reason: str,
        pages: list[str],
        kinds: list[str],
        position: tuple[int, int],
        next_due: tuple[datetime, dict[str, int]] | None,
    ) -> None:
        decision = fire(timer, incident(), T0, resolved)

        assert decision.reason == reason
        assert [page.channel for page in decision.pages] == pages
        assert {page.event for page in decision.pages} <= {PageEvent.TRIGGERED}
        assert [entry.kind for entry in decision.timeline] == kinds
        assert decision.incident is not None
        after = decision.incident
        assert (after.escalation_step, after.escalation_round, after.escalated_at) == (
            *position,
            T0,
        )
        assert set(pages) <= set(after.paged)
        expected = () if next_due is None else (TimerSpec(ESCALATE, *next_due),)
        assert decision.timers == expected

    def test_the_timeline_names_the_step_and_who(self) -> None:
        decision = fire(escalate_timer(0), incident(), T0, NOBODY_PRIMARY)
        assert [dict(entry.detail) for entry in decision.timeline] == [
            {"step": 0, "round": 0, "schedules": ["primary"]},
            {"step": 1, "round": 0, "people": ["bob"], "channels": ["sre-chat"]},
        ]

    @pytest.mark.parametrize(
        ("subject", "timer", "reason"),
        [
            pytest.param(incident(state=ACKNOWLEDGED), escalate_timer(1), "not_triggered",
                         id="acknowledged in the same epoch"),
            pytest.param(incident(), escalate_timer(1, epoch=1), "stale_epoch",
                         id="an ack or a resolve since"),
            pytest.param(incident(policy=None), escalate_timer(1), "no_more_steps",
                         id="no policy"),
            pytest.param(incident(), escalate_timer(3), "no_more_steps", id="past the chain"),
        ],
    )  # fmt: skip
    def test_pages_nobody_when(self, subject: Incident, timer: Timer, reason: str) -> None:
        decision = fire(timer, subject, T0)
        assert (decision.reason, decision.pages, decision.incident) == (reason, (), None)

    def test_without_a_resolved_reach_a_step_pages_its_own_people_and_channels(self) -> None:
        decision = decide_timer(incident(), escalate_timer(1), None, T0, T0)
        assert [page.channel for page in decision.pages] == ["sre-chat"]
        decision = decide_timer(incident(), escalate_timer(2), None, T0, T0)
        assert [page.channel for page in decision.pages] == [CAROL]

    def test_a_repeat_pages_the_same_step_under_a_new_key(self) -> None:
        first = PageOrder(ALICE, PageEvent.TRIGGERED, 0)
        again = PageOrder(ALICE, PageEvent.TRIGGERED, 0, round=1)
        assert first.dedup_suffix == "triggered:0:person:alice:0"
        assert again.dedup_suffix == "triggered:0r1:person:alice:0"


class TestChain:
    @pytest.mark.parametrize(
        ("repeat", "step", "round_", "expected"),
        [
            pytest.param(0, 0, 0, (1, 0), id="next step"),
            pytest.param(0, 2, 0, None, id="end of a chain that does not repeat"),
            pytest.param(2, 2, 0, (0, 1), id="end of the first run: the second"),
            pytest.param(2, 2, 1, (0, 2), id="end of the second run: the third"),
            pytest.param(2, 2, 2, None, id="end of the third run: done"),
        ],
    )
    def test_following(
        self, repeat: int, step: int, round_: int, expected: tuple[int, int] | None
    ) -> None:
        assert following(replace(POLICY, repeat=repeat), step, round_) == expected

    def test_a_step_without_a_delay_ends_the_chain(self) -> None:
        policy = EscalationPolicy("p", (EscalationStep(("pager",)), EscalationStep(("b",))), 3)
        assert next_timer(policy, 0, 0, T0) is None


def opened(policy: EscalationPolicy) -> Any:
    spec = RuleSpec.model_validate(
        {"name": "checkout-down", "match": ['alertname="CheckoutDown"'], "severity": "critical",
         "title": "Checkout down"}
    )  # fmt: skip
    signal = Signal(
        Source.ALERTMANAGER, "CheckoutDown", "f1", AlertStatus.FIRING, T0, None,
        {"alertname": "CheckoutDown"}, {}, T0,
    )  # fmt: skip
    return decide_signals(None, [signal], RuleMatch(spec, "{}", {}), policy, T0)


class TestOpening:
    def test_a_first_step_of_people_pages_once_the_engine_resolved_who(self) -> None:
        decision = opened(POLICY)
        assert decision.pages == ()
        assert decision.timers == (TimerSpec(ESCALATE, T0, {"step": 0, "round": 0}),)
        assert decision.incident is not None
        assert (decision.incident.paged, decision.incident.escalated_at) == ((), None)

    def test_a_first_step_of_channels_pages_at_once(self) -> None:
        policy = EscalationPolicy(
            "p", (EscalationStep(("pager",), 5 * MIN), EscalationStep(("b",)))
        )
        decision = opened(policy)
        assert [page.channel for page in decision.pages] == ["pager"]
        assert decision.timers == (TimerSpec(ESCALATE, T0 + 5 * MIN, {"step": 1, "round": 0}),)


class TestReopening:
    def test_the_first_step_of_people_is_told_it_is_back_under_the_reopen_keys(self) -> None:
        resolved = incident(
            state=IncidentState.RESOLVED, resolved_at=T0, paged=(ALICE, BOB), escalation_step=1
        )
        signal = Signal(
            Source.ALERTMANAGER, "CheckoutDown", "f2", AlertStatus.FIRING, T0 + MIN, None,
            {"alertname": "CheckoutDown"}, {}, T0 + MIN,
        )  # fmt: skip
        spec = RuleSpec.model_validate(
            {"name": "checkout-down", "match": ['alertname="CheckoutDown"'],
             "severity": "critical", "title": "Checkout down", "reopen_within": "10m"}
        )  # fmt: skip
        match = RuleMatch(spec, "{}", {})
        reopened = decide_signals(resolved, [signal], match, POLICY, T0 + MIN)

        assert reopened.reason == "reopened"
        assert [p.dedup_suffix for p in reopened.pages] == [
            "reopened:0:person:alice:0",
            "reopened:0:person:bob:0",
        ]
        step_0 = TimerSpec(ESCALATE, T0 + MIN, {"step": 0, "round": 0, "event": "reopened"})
        assert reopened.timers == (step_0,)
        assert reopened.incident is not None
        timer = Timer(3, 7, ESCALATE, T0 + MIN, reopened.incident.epoch, step_0.payload)
        paged = fire(timer, reopened.incident, T0 + MIN)
        assert [p.dedup_suffix for p in paged.pages] == ["reopened:0:person:alice:0"]


class TestAckTimeout:
    def test_an_ack_sets_the_timeout_for_its_epoch(self) -> None:
        decision = decide_ack(incident(escalation_step=1), "bob", "api", None, T0 + 2 * MIN)
        assert decision.timers == (TimerSpec(ACK_TIMEOUT, T0 + 32 * MIN, {"step": 1, "round": 0}),)

    def test_no_timeout_without_one_in_the_policy(self) -> None:
        subject = incident(policy=replace(POLICY, ack_timeout=None))
        assert decide_ack(subject, "bob", "api", None, T0).timers == ()

    @pytest.mark.parametrize(
        ("by", "pages", "people"),
        [
            pytest.param("bob", ["person:bob:0"], ["bob"], id="a known person: them"),
            pytest.param("person:bob:1", ["person:bob:0"], ["bob"],
                         id="the contact key their ack link was sent to: them"),
            pytest.param("maria", ["sre-chat", BOB], ["bob"],
                         id="a name no rule file knows: the step's targets"),
        ],
    )  # fmt: skip
    def test_renotifies_the_acknowledger_and_triggers_again(
        self, by: str, pages: list[str], people: list[str]
    ) -> None:
        acked = incident(state=ACKNOWLEDGED, acknowledged_by=by, acknowledged_at=T0,
                         escalation_step=1, epoch=3)  # fmt: skip
        timer = Timer(2, 7, ACK_TIMEOUT, T0 + 30 * MIN, 3, {"step": 1, "round": 0})
        now = T0 + 30 * MIN

        decision = fire(timer, acked, now)

        assert decision.reason == "ack_timed_out"
        assert [(p.channel, p.event) for p in decision.pages] == [
            (key, PageEvent.TRIGGERED) for key in pages
        ]
        assert decision.incident is not None
        again = decision.incident
        assert (again.state, again.epoch, again.acknowledged_by) == (TRIGGERED, 4, None)
        [entry] = decision.timeline
        assert (entry.kind, entry.detail["acknowledged_by"], entry.detail["people"]) == (
            "incident.ack_timeout",
            by,
            people,
        )
        assert decision.timers == (TimerSpec(ESCALATE, now + 10 * MIN, {"step": 2, "round": 0}),)

    def test_does_nothing_once_resolved_or_acknowledged_again(self) -> None:
        timer = Timer(2, 7, ACK_TIMEOUT, T0, 3, {"step": 1, "round": 0})
        assert fire(timer, incident(state=ACKNOWLEDGED, epoch=4), T0).reason == "stale_epoch"
        assert fire(timer, incident(epoch=3), T0).reason == "not_acknowledged"

    @pytest.mark.parametrize(
        ("by", "expected"),
        [
            pytest.param("alice", "alice", id="a person's id"),
            pytest.param("person:alice:2", "alice", id="a contact key"),
            pytest.param("person:zed:0", None, id="a contact key of nobody known"),
            pytest.param("Alice", None, id="a typed name"),
            pytest.param(None, None, id="nobody"),
        ],
    )
    def test_acknowledger(self, by: str | None, expected: str | None) -> None:
        assert acknowledger(by, PEOPLE) == expected


class TestAudit:
    @pytest.mark.parametrize(
        ("subject", "pending", "expected"),
        [
            pytest.param(incident(escalation_step=1), {ESCALATE}, None,
                         id="unacknowledged with its next escalation pending"),
            pytest.param(
                incident(escalation_step=1), set(),
                Repair(AuditProblem.MISSING_ESCALATION,
                       TimerSpec(ESCALATE, T0 + 10 * MIN, {"step": 2, "round": 0})),
                id="lost escalation: back when it was due",
            ),
            pytest.param(
                incident(escalated_at=T0 - HOUR), set(),
                Repair(AuditProblem.MISSING_ESCALATION,
                       TimerSpec(ESCALATE, T0, {"step": 1, "round": 0})),
                id="lost escalation long overdue: due now",
            ),
            pytest.param(
                incident(escalated_at=None), set(),
                Repair(AuditProblem.MISSING_ESCALATION,
                       TimerSpec(ESCALATE, T0, {"step": 0, "round": 0})),
                id="first step never resolved: due now",
            ),
            pytest.param(incident(escalation_step=2, escalation_round=1), set(), None,
                         id="last step, repeats done"),
            pytest.param(incident(escalation_step=2), {ACK_TIMEOUT}, Repair(
                AuditProblem.MISSING_ESCALATION,
                TimerSpec(ESCALATE, T0 + 15 * MIN, {"step": 0, "round": 1})),
                id="last step with a repeat left: the repeat"),
            pytest.param(incident(state=ACKNOWLEDGED, acknowledged_at=T0), {ACK_TIMEOUT}, None,
                         id="acknowledged with its ack timeout pending"),
            pytest.param(
                incident(state=ACKNOWLEDGED, acknowledged_at=T0), set(),
                Repair(AuditProblem.MISSING_ACK_TIMEOUT,
                       TimerSpec(ACK_TIMEOUT, T0 + 30 * MIN, {"step": 0, "round": 0})),
                id="lost ack timeout",
            ),
            pytest.param(
                incident(state=ACKNOWLEDGED, acknowledged_at=T0,
                         policy=replace(POLICY, ack_timeout=None)), set(), None,
                id="acknowledged under a policy without an ack timeout",
            ),
            pytest.param(incident(policy=None), set(), None, id="no policy"),
            pytest.param(incident(state=IncidentState.RESOLVED), set(), None, id="resolved"),
        ],
    )  # fmt: skip
    def test_finds_what_an_open_incident_lacks(
        self, subject: Incident, pending: set[TimerKind], expected: Repair | None
    ) -> None:
        assert audit(subject, pending, T0) == expected
