"""Incident decisions: what a signal, ack, resolve or due timer changes, and what it pages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.domain.incidents import decide_ack, decide_resolve, decide_signals, decide_timer
from detector.domain.model import (
    AlertState,
    AlertStatus,
    Decision,
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
SEC = timedelta(seconds=1)
HOUR = timedelta(hours=1)
FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED
TRIGGERED, ACKNOWLEDGED, CLOSED = (
    IncidentState.TRIGGERED,
    IncidentState.ACKNOWLEDGED,
    IncidentState.RESOLVED,
)

POLICY = EscalationPolicy(
    "oncall",
    (
        EscalationStep(("pager",), escalate_after=5 * MIN),
        EscalationStep(("backup", "pager"), escalate_after=10 * MIN),
        EscalationStep(("manager",)),
    ),
)
GROUP = {"cluster": "eu-prod-1"}


def rule(**overrides: Any) -> RuleSpec:
    """The pool-exhausted rule, as a rule file would declare it."""
    spec = {
        "name": "pool-exhausted",
        "match": ['alertname="PgBouncerPoolSaturated"'],
        "group_by": ["cluster"],
        "severity": "critical",
        "title": "Connection pool exhausted on {{ labels.cluster }}",
        "summary": "{{ annotations.summary }}",
        "component": "checkout",
        "escalation_policy": "oncall",
        "reopen_within": "10m",
        **overrides,
    }
    return RuleSpec.model_validate(spec)


def match(spec: RuleSpec | None = None) -> RuleMatch:
    return RuleMatch(spec or rule(), '{cluster="eu-prod-1"}', GROUP)


def signal(fingerprint: str, status: AlertStatus = FIRING, starts_at: datetime = T0) -> Signal:
    """One alert of the eu-prod-1 pool, as intake hands it over."""
    return Signal(
        source=Source.ALERTMANAGER,
        name="PgBouncerPoolSaturated",
        fingerprint=fingerprint,
        status=status,
        starts_at=starts_at,
        ends_at=None,
        labels={"alertname": "PgBouncerPoolSaturated", "instance": fingerprint, **GROUP},
        annotations={"summary": f"no idle server connection on {fingerprint}"},
        received_at=starts_at,
    )


def held(fingerprint: str, status: AlertStatus = FIRING, starts_at: datetime = T0) -> AlertState:
    """An alert occurrence an incident already holds."""
    return AlertState(fingerprint, starts_at, status, None, {"instance": fingerprint}, T0)


def incident(*alerts: AlertState, **overrides: Any) -> Incident:
    """A stored incident of the pool-exhausted rule (id 7), triggered at T0 unless overridden."""
    fields: dict[str, Any] = {
        "rule": "pool-exhausted",
        "group_key": '{cluster="eu-prod-1"}',
        "group_labels": GROUP,
        "state": TRIGGERED,
        "severity": "critical",
        "title": "Connection pool exhausted on eu-prod-1",
        "summary": "",
        "component": "checkout",
        "policy": POLICY,
        "opened_at": T0,
        "last_signal_at": T0,
        "id": 7,
        "epoch": 3,
        "alerts": {alert.occurrence: alert for alert in alerts},
        **overrides,
    }
    if "paged" not in overrides:  # everyone up to the current step got the page
        steps = POLICY.steps[: fields.get("escalation_step", 0) + 1]
        fields["paged"] = tuple(dict.fromkeys(c for step in steps for c in step.channels))
    return Incident(**fields)


def resolved_incident(resolved_at: datetime = T0 + MIN, **overrides: Any) -> Incident:
    return incident(
        held("a", RESOLVED), state=CLOSED, resolved_at=resolved_at, resolved_by="x", **overrides
    )


def timer(kind: TimerKind, epoch: int = 3, **payload: Any) -> Timer:
    return Timer(id=1, incident_id=7, kind=kind, due_at=T0, epoch=epoch, payload=payload)


def pages(event: PageEvent, step: int, *channels: str) -> tuple[PageOrder, ...]:
    return tuple(PageOrder(channel, event, step) for channel in channels)


def assert_nothing_changes(decision: Decision) -> None:
    assert decision.incident is None
    assert decision.pages == ()
    assert decision.timers == ()
    assert decision.timeline == ()


class TestDecideSignalsOpen:
    def test_firing_signal_opens_a_triggered_incident_with_rendered_text(self) -> None:
        decision = decide_signals(None, [signal("a")], match(), POLICY, T0)

        assert decision.reason == "opened"
        assert decision.opened
        opened = decision.incident
        assert opened is not None
        assert (opened.state, opened.epoch, opened.escalation_step) == (TRIGGERED, 0, 0)
        assert opened.title == "Connection pool exhausted on eu-prod-1"
        assert opened.summary == "no idle server connection on a"
        assert (opened.severity, opened.component, opened.policy) == (
            "critical",
            "checkout",
            POLICY,
        )
        assert [entry.kind for entry in decision.timeline] == ["incident.opened", "alerts.firing"]

    def test_opening_pages_only_the_first_step(self) -> None:
        decision = decide_signals(None, [signal("a")], match(), POLICY, T0)

        assert decision.pages == pages(PageEvent.TRIGGERED, 0, "pager")

    @pytest.mark.parametrize(
        ("rule_overrides", "policy", "expected"),
        [
            pytest.param(
                {},
                POLICY,
                (TimerSpec(TimerKind.ESCALATE, T0 + 5 * MIN, {"step": 1, "round": 0}),),
                id="escalation at now+escalate_after of step 0",
            ),
            pytest.param(
                {"resolve_after": "15m"},
                POLICY,
                (
                    TimerSpec(TimerKind.ESCALATE, T0 + 5 * MIN, {"step": 1, "round": 0}),
                    TimerSpec(TimerKind.SILENCE_CHECK, T0 + 15 * MIN),
                ),
                id="silence check when resolve_after is set",
            ),
            pytest.param(
                {},
                EscalationPolicy("solo", (EscalationStep(("pager",)),)),
                (),
                id="single-step policy never escalates",
            ),
            pytest.param({"escalation_policy": None}, None, (), id="no policy no timers"),
        ],
    )
    def test_timers_scheduled_on_open(
        self,
        rule_overrides: dict[str, Any],
        policy: EscalationPolicy | None,
        expected: tuple[TimerSpec, ...],
    ) -> None:
        decision = decide_signals(None, [signal("a")], match(rule(**rule_overrides)), policy, T0)

        assert decision.timers == expected

    def test_rule_without_policy_opens_without_paging(self) -> None:
        spec = rule(escalation_policy=None)

        decision = decide_signals(None, [signal("a")], match(spec), None, T0)

        assert decision.reason == "opened"
        assert decision.pages == ()

    def test_firing_and_resolved_in_one_batch_opens_and_resolves(self) -> None:
        batch = [signal("a"), signal("a", RESOLVED)]

        decision = decide_signals(None, batch, match(), POLICY, T0)

        assert decision.reason == "opened_and_resolved"
        assert decision.opened
        assert decision.resolved
        assert decision.pages == (
            *pages(PageEvent.TRIGGERED, 0, "pager"),
            *pages(PageEvent.RESOLVED, 0, "pager"),
        )


class TestDecideSignalsOpenIncident:
    @pytest.mark.parametrize(
        ("current", "batch", "expected_reason"),
        [
            pytest.param(
                None,
                [signal("a", RESOLVED)],
                "no_new_firing_alert",
                id="resolved signal without incident",
            ),
            pytest.param(
                resolved_incident(),
                [signal("a", RESOLVED)],
                "no_new_firing_alert",
                id="resolved signal after incident resolved",
            ),
            pytest.param(incident(held("a")), [signal("a")], "nothing_new", id="replayed firing"),
            pytest.param(
                incident(held("a"), held("b", RESOLVED)),
                [signal("b", RESOLVED)],
                "nothing_new",
                id="replayed resolved",
            ),
            pytest.param(
                incident(held("a"), held("b", RESOLVED)),
                [signal("b", FIRING)],
                "nothing_new",
                id="resolved occurrence never fires again",
            ),
        ],
    )
    def test_signals_that_change_nothing(
        self, current: Incident | None, batch: list[Signal], expected_reason: str
    ) -> None:
        decision = decide_signals(current, batch, match(), POLICY, T0 + MIN)

        assert decision.reason == expected_reason
        assert_nothing_changes(decision)

    @pytest.mark.parametrize(
        "batch",
        [
            pytest.param([signal("b")], id="new fingerprint"),
            pytest.param([signal("a", starts_at=T0 + MIN)], id="same fingerprint new startsAt"),
        ],
    )
    def test_new_occurrence_attaches_without_paging(self, batch: list[Signal]) -> None:
        current = incident(held("a"))

        decision = decide_signals(current, batch, match(), POLICY, T0 + 2 * MIN)

        assert decision.reason == "attached"
        updated = decision.incident
        assert updated is not None
        assert (updated.id, updated.state, updated.epoch) == (7, TRIGGERED, 3)
        assert len(updated.alerts) == 2
        assert updated.last_signal_at == T0 + 2 * MIN
        assert decision.pages == ()
        assert decision.timers == ()
        assert [alert.fingerprint for alert in decision.changed_alerts] == [batch[0].fingerprint]

    @pytest.mark.parametrize(
        ("step", "expected_channels"),
        [
            pytest.param(0, ("pager",), id="step 0"),
            pytest.param(1, ("pager", "backup"), id="step 1 pages each channel once"),
            pytest.param(2, ("pager", "backup", "manager"), id="last step"),
            pytest.param(1, (), id="pages held by a maintenance window: nobody to tell"),
        ],
    )
    def test_last_alert_resolving_resolves_and_tells_everyone_paged(
        self, step: int, expected_channels: tuple[str, ...]
    ) -> None:
        current = incident(
            held("a"), held("b", RESOLVED), escalation_step=step, paged=expected_channels
        )

        decision = decide_signals(current, [signal("a", RESOLVED)], match(), POLICY, T0 + MIN)

        assert decision.reason == "attached_and_resolved"
        assert decision.resolved
        resolved = decision.incident
        assert resolved is not None
        assert (resolved.state, resolved.epoch) == (CLOSED, 4)
        assert (resolved.resolved_at, resolved.resolved_by) == (T0 + MIN, "stormwatch")
        assert decision.pages == pages(PageEvent.RESOLVED, step, *expected_channels)

    def test_one_of_two_alerts_resolving_keeps_the_incident_open(self) -> None:
        current = incident(held("a"), held("b"))

        decision = decide_signals(current, [signal("a", RESOLVED)], match(), POLICY, T0 + MIN)

        assert decision.reason == "attached"
        assert decision.incident is not None
        assert decision.incident.state is TRIGGERED
        assert decision.pages == ()

    def test_auto_resolve_false_keeps_it_open_when_all_alerts_resolve(self) -> None:
        spec = rule(auto_resolve=False)

        decision = decide_signals(
            incident(held("a")), [signal("a", RESOLVED)], match(spec), POLICY, T0 + MIN
        )

        assert decision.reason == "attached"
        assert decision.incident is not None
        assert decision.incident.state is TRIGGERED
        assert decision.incident.epoch == 3
        assert not decision.resolved
        assert decision.pages == ()


class TestDecideSignalsReopen:
    @pytest.mark.parametrize(
        "since_resolved",
        [
            pytest.param(SEC, id="right after resolve"),
            pytest.param(10 * MIN - SEC, id="just inside reopen_within"),
        ],
    )
    def test_firing_within_reopen_window_reopens_and_tells_who_was_paged(
        self, since_resolved: timedelta
    ) -> None:
        current = resolved_incident(
            resolved_at=T0, escalation_step=2, acknowledged_at=T0, acknowledged_by="ana"
        )
        now = T0 + since_resolved

        decision = decide_signals(current, [signal("b", starts_at=now)], match(), POLICY, now)

        assert decision.reason == "reopened"
        assert not decision.opened
        reopened = decision.incident
        assert reopened is not None
        assert (reopened.id, reopened.state, reopened.epoch) == (7, TRIGGERED, 4)
        assert (reopened.escalation_step, reopened.acknowledged_by, reopened.resolved_at) == (
            0,
            None,
            None,
        )
        assert decision.pages == pages(PageEvent.REOPENED, 0, "pager", "backup", "manager")
        assert decision.timers == (
            TimerSpec(TimerKind.ESCALATE, now + 5 * MIN, {"step": 1, "round": 0}),
        )
        assert decision.timeline[0].kind == "incident.reopened"

    @pytest.mark.parametrize(
        "since_resolved",
        [
            pytest.param(10 * MIN, id="exactly reopen_within"),
            pytest.param(3 * HOUR, id="hours later"),
        ],
    )
    def test_firing_after_reopen_window_opens_a_new_incident(
        self, since_resolved: timedelta
    ) -> None:
        now = T0 + since_resolved

        decision = decide_signals(
            resolved_incident(resolved_at=T0), [signal("b", starts_at=now)], match(), POLICY, now
        )

        assert decision.reason == "opened"
        fresh = decision.incident
        assert fresh is not None
        assert (fresh.id, fresh.epoch, fresh.opened_at) == (None, 0, now)
        assert list(fresh.alerts) == [("b", now)]
        assert decision.pages == pages(PageEvent.TRIGGERED, 0, "pager")

    def test_stale_firing_of_resolved_occurrence_does_not_reopen(self) -> None:
        current = resolved_incident(resolved_at=T0 + MIN)

        decision = decide_signals(current, [signal("a")], match(), POLICY, T0 + 2 * MIN)

        assert decision.reason == "no_new_firing_alert"
        assert_nothing_changes(decision)


class TestDecideAck:
    @pytest.mark.parametrize(
        ("state", "expected_reason"),
        [
            pytest.param(ACKNOWLEDGED, "already_acknowledged", id="second ack"),
            pytest.param(CLOSED, "already_resolved", id="ack after resolve"),
        ],
    )
    def test_ack_that_changes_nothing(self, state: IncidentState, expected_reason: str) -> None:
        decision = decide_ack(incident(held("a"), state=state), "ana", "api", rule(), T0 + MIN)

        assert decision.reason == expected_reason
        assert_nothing_changes(decision)

    @pytest.mark.parametrize(
        ("step", "expected_channels"),
        [
            pytest.param(0, ("pager",), id="at step 0"),
            pytest.param(1, ("pager", "backup"), id="after one escalation"),
        ],
    )
    def test_ack_bumps_epoch_and_tells_everyone_paged(
        self, step: int, expected_channels: tuple[str, ...]
    ) -> None:
        current = incident(held("a"), escalation_step=step)

        decision = decide_ack(current, "ana", "link", rule(), T0 + MIN)

        assert decision.reason == "acknowledged"
        acked = decision.incident
        assert acked is not None
        assert (acked.state, acked.epoch) == (ACKNOWLEDGED, 4)
        assert (acked.acknowledged_at, acked.acknowledged_by) == (T0 + MIN, "ana")
        assert decision.pages == pages(PageEvent.ACKNOWLEDGED, step, *expected_channels)
        assert decision.timeline[0].detail == {"by": "ana", "via": "link"}

    def test_second_ack_after_first_is_already_acknowledged(self) -> None:
        first = decide_ack(incident(held("a")), "ana", "api", rule(), T0 + MIN)
        assert first.incident is not None

        second = decide_ack(first.incident, "bo", "cli", rule(), T0 + 2 * MIN)

        assert second.reason == "already_acknowledged"
        assert second.incident is None

    @pytest.mark.parametrize(
        ("resolve_after", "expected"),
        [
            pytest.param(None, (), id="no silence rule"),
            pytest.param(
                "15m",
                (TimerSpec(TimerKind.SILENCE_CHECK, T0 + 15 * MIN),),
                id="silence check re-armed from the last signal for the new epoch",
            ),
        ],
    )
    def test_ack_timers(self, resolve_after: str | None, expected: tuple[TimerSpec, ...]) -> None:
        spec = rule(resolve_after=resolve_after)

        decision = decide_ack(incident(held("a")), "ana", "api", spec, T0 + MIN)

        assert decision.timers == expected


class TestDecideResolve:
    @pytest.mark.parametrize(
        ("state", "step", "expected_channels"),
        [
            pytest.param(TRIGGERED, 0, ("pager",), id="triggered"),
            pytest.param(ACKNOWLEDGED, 1, ("pager", "backup"), id="acknowledged after escalation"),
        ],
    )
    def test_resolve_open_incident(
        self, state: IncidentState, step: int, expected_channels: tuple[str, ...]
    ) -> None:
        current = incident(held("a"), state=state, escalation_step=step)

        decision = decide_resolve(current, "ana", "fixed the pool size", T0 + MIN)

        assert decision.reason == "resolved"
        assert decision.resolved
        resolved = decision.incident
        assert resolved is not None
        assert (resolved.state, resolved.epoch) == (CLOSED, 4)
        assert (resolved.resolved_at, resolved.resolved_by) == (T0 + MIN, "ana")
        assert decision.pages == pages(PageEvent.RESOLVED, step, *expected_channels)
        assert decision.timeline[0].detail == {"by": "ana", "reason": "fixed the pool size"}

    def test_resolve_twice_changes_nothing_the_second_time(self) -> None:
        first = decide_resolve(incident(held("a")), "ana", "fixed", T0 + MIN)
        assert first.incident is not None

        second = decide_resolve(first.incident, "bo", "fixed too", T0 + 2 * MIN)

        assert second.reason == "already_resolved"
        assert_nothing_changes(second)


class TestDecideTimerEscalate:
    @pytest.mark.parametrize(
        ("current", "due", "expected_reason"),
        [
            pytest.param(
                incident(held("a")),
                timer(TimerKind.ESCALATE, epoch=2, step=1),
                "stale_epoch",
                id="stale epoch",
            ),
            pytest.param(
                incident(held("a"), state=ACKNOWLEDGED),
                timer(TimerKind.ESCALATE, step=1),
                "not_triggered",
                id="acknowledged",
            ),
            pytest.param(
                resolved_incident(epoch=3),
                timer(TimerKind.ESCALATE, step=1),
                "not_open",
                id="resolved",
            ),
            pytest.param(
                incident(held("a"), escalation_step=2),
                timer(TimerKind.ESCALATE, step=3),
                "no_more_steps",
                id="past the last step",
            ),
            pytest.param(
                incident(held("a"), policy=None),
                timer(TimerKind.ESCALATE, step=1),
                "no_more_steps",
                id="no policy",
            ),
        ],
    )
    def test_escalation_that_does_nothing(
        self, current: Incident, due: Timer, expected_reason: str
    ) -> None:
        decision = decide_timer(current, due, rule(), T0, T0 + 5 * MIN)

        assert decision.reason == expected_reason
        assert_nothing_changes(decision)

    @pytest.mark.parametrize(
        ("step", "expected_pages", "expected_timers"),
        [
            pytest.param(
                1,
                pages(PageEvent.TRIGGERED, 1, "backup", "pager"),
                (TimerSpec(TimerKind.ESCALATE, T0 + 5 * MIN + 10 * MIN, {"step": 2, "round": 0}),),
                id="to step 1 and schedule step 2",
            ),
            pytest.param(
                2,
                pages(PageEvent.TRIGGERED, 2, "manager"),
                (),
                id="to the last step",
            ),
        ],
    )
    def test_escalation_pages_the_next_step(
        self,
        step: int,
        expected_pages: tuple[PageOrder, ...],
        expected_timers: tuple[TimerSpec, ...],
    ) -> None:
        current = incident(held("a"), escalation_step=step - 1)

        decision = decide_timer(
            current, timer(TimerKind.ESCALATE, step=step), rule(), T0, T0 + 5 * MIN
        )

        assert decision.reason == "escalated"
        assert decision.incident is not None
        assert (decision.incident.escalation_step, decision.incident.epoch) == (step, 3)
        assert decision.pages == expected_pages
        assert decision.timers == expected_timers


class TestDecideTimerSilenceCheck:
    @pytest.mark.parametrize(
        ("last_seen", "now", "expected_reason", "expected_timers"),
        [
            pytest.param(T0, T0 + 15 * MIN, "resolved", (), id="quiet exactly resolve_after"),
            pytest.param(
                T0 + 10 * MIN, T0 + 25 * MIN, "resolved", (), id="quiet since the last replay"
            ),
            pytest.param(
                T0,
                T0 + 15 * MIN - SEC,
                "still_active",
                (TimerSpec(TimerKind.SILENCE_CHECK, T0 + 15 * MIN),),
                id="one second short re-arms",
            ),
            pytest.param(
                T0 + 10 * MIN,
                T0 + 15 * MIN,
                "still_active",
                (TimerSpec(TimerKind.SILENCE_CHECK, T0 + 25 * MIN),),
                id="recent replay re-arms at last_seen+resolve_after",
            ),
        ],
    )
    def test_silence_check(
        self,
        last_seen: datetime,
        now: datetime,
        expected_reason: str,
        expected_timers: tuple[TimerSpec, ...],
    ) -> None:
        spec = rule(resolve_after="15m", auto_resolve=False)

        decision = decide_timer(
            incident(held("a")), timer(TimerKind.SILENCE_CHECK), spec, last_seen, now
        )

        assert decision.reason == expected_reason
        assert decision.timers == expected_timers
        assert decision.incident is not None
        expected_state = CLOSED if expected_reason == "resolved" else TRIGGERED
        assert decision.incident.state is expected_state

    def test_quiet_incident_resolves_with_pages_and_reason(self) -> None:
        spec = rule(resolve_after="15m")
        current = incident(held("a"), escalation_step=1)

        decision = decide_timer(current, timer(TimerKind.SILENCE_CHECK), spec, T0, T0 + 20 * MIN)

        assert decision.resolved
        assert decision.pages == pages(PageEvent.RESOLVED, 1, "pager", "backup")
        assert decision.timeline[0].detail == {"by": "stormwatch", "reason": "no signal for 15m"}

    @pytest.mark.parametrize(
        ("current", "spec", "expected_reason"),
        [
            pytest.param(
                incident(held("a")), rule(), "silence_rule_removed", id="rule lost resolve_after"
            ),
            pytest.param(incident(held("a")), None, "silence_rule_removed", id="rule deleted"),
            pytest.param(
                replace(incident(held("a")), epoch=4),
                rule(resolve_after="15m"),
                "stale_epoch",
                id="stale epoch",
            ),
        ],
    )
    def test_silence_check_that_does_nothing(
        self, current: Incident, spec: RuleSpec | None, expected_reason: str
    ) -> None:
        decision = decide_timer(current, timer(TimerKind.SILENCE_CHECK), spec, T0, T0 + HOUR)

        assert decision.reason == expected_reason
        assert_nothing_changes(decision)
