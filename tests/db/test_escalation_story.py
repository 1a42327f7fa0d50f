"""Escalation to people, told as incidents: the primary's on-call person is paged at their first
contact method, then the secondary's (whoever is on call when that step fires, after a
handoff), an ack stops it, an ack timeout raises it again; schedules with nobody on call are
passed over at once, a repeating chain runs twice, and a lost timer is put back by the
self-audit in time for its page. A real database, the real engine, recording channels."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from structlog.testing import capture_logs

from detector.engine import actions
from detector.engine.cycle import CycleReport, Engine
from detector.engine.delivery import Deliverer
from detector.ruleset.live import Routes
from detector.ruleset.loader import load_ruleset
from detector.ruleset.oncall_specs import PersonSpec
from detector.ruleset.rules import RuleSet
from detector.service.metrics import Metrics
from detector.web.ack_links import LinkBuilder
from responders.escalation import EscalationPolicy, EscalationStep
from responders.messages import Message, MessageKind, PageMessage
from responders.oncall.model import Layer, Schedule
from responders.oncall.targets import notified_at
from tests.conftest import alert, store_alerts
from tests.fakes import T0, FakeClock

MIN = timedelta(minutes=1)
UTC_ZONE = ZoneInfo("UTC")
PEOPLE = ("alice", "bob", "carol", "dave", "erin")


def weekly(name: str, *members: str) -> Schedule:
    layer = Layer(name, members, timedelta(days=7), time(0, 0), UTC_ZONE, date(2026, 11, 2))
    return Schedule(name, UTC_ZONE, (layer,))


PRIMARY = weekly("primary", "alice")
SECONDARY = Schedule(
    "secondary",
    UTC_ZONE,
    # hourly shifts handing off at minute 3: dave until 09:03, erin from then
    (Layer("hourly", ("dave", "erin"), timedelta(hours=1), time(8, 3), UTC_ZONE, T0.date()),),
)
NOBODY = Schedule("nights", UTC_ZONE, ())

CHECKOUT = EscalationPolicy(
    "oncall",
    (
        EscalationStep(schedules=("primary",), escalate_after=5 * MIN),
        EscalationStep(("sre-chat",), 10 * MIN, schedules=("secondary",)),
        EscalationStep(people=("carol",)),
    ),
    ack_timeout=30 * MIN,
)


@dataclass(frozen=True)
class Sent:
    """One page as a recording channel received it."""

    to: str
    event: str
    step: int
    recipient: str | None
    key: str


@dataclass
class Phone:
    """A recording channel for one outbox key (a shared channel or a contact method)."""

    name: str
    log: list[Sent] = field(repr=False)
    kinds: frozenset[MessageKind] = frozenset({MessageKind.PAGE})

    async def send(self, message: Message, idempotency_key: str) -> None:
        assert isinstance(message, PageMessage)
        page = message.page
        self.log.append(Sent(self.name, page.event, page.step, page.recipient, idempotency_key))


class Story:
    """The engine on the test database with ``policy`` for the pool-exhausted rule, the
    schedules above, and a recording channel for every endpoint."""

    def __init__(self, pool: asyncpg.Pool, rules_dir: Path, policy: EscalationPolicy) -> None:
        self.pool = pool
        self.clock = FakeClock()
        self.metrics = Metrics()
        self.sent: list[Sent] = []
        loaded = load_ruleset(rules_dir, T0)
        people = {p: PersonSpec(id=p, name=p.title(), time_zone="UTC") for p in PEOPLE}
        self.rules: RuleSet = replace(
            loaded,
            policies={"oncall": policy},
            people=people,
            schedules={s.name: s for s in (PRIMARY, SECONDARY, NOBODY)},
        )
        keys = ["sre-chat", *(f"person:{p}:0" for p in PEOPLE)]
        routes = Routes(self.rules, {key: Phone(key, self.sent) for key in keys})
        links = LinkBuilder("https://sw.example", b"k", timedelta(hours=1), self.clock)
        self.engine = Engine(
            pool, lambda: routes, Deliverer(links, random.Random(7)), self.clock, self.metrics
        )

    async def open(self) -> int:
        await store_alerts(self.pool, self.clock, alert(cluster="eu-1"))
        await self.engine.run_once()
        incident_id: int = await self.pool.fetchval("SELECT id FROM incidents")
        return incident_id

    async def at(self, after: timedelta) -> CycleReport:
        """Move the clock to ``T0 + after`` and run a cycle."""
        self.clock.advance(T0 + after - self.clock.now())
        return await self.engine.run_once()

    def pages(self) -> list[tuple[str, str, int]]:
        """Every page so far as (to, event, step), and forget them."""
        got = [(s.to, s.event, s.step) for s in self.sent]
        self.sent.clear()
        return got

    async def timeline(self, incident_id: int, *kinds: str) -> list[tuple[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT kind, detail FROM timeline WHERE incident_id = $1 AND kind = ANY($2::text[])"
            " ORDER BY id",
            incident_id,
            list(kinds),
        )
        return [(row["kind"], row["detail"]) for row in rows]

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels or {})


STEPS = ("incident.paged", "incident.escalated", "escalation.nobody_on_call")


async def primary_then_secondary(story: Story) -> int:
    """Open: the primary's person is paged; 5 minutes on, the secondary's after a handoff."""
    incident_id = await story.open()
    [first] = story.sent
    assert first == Sent(
        "person:alice:0", "triggered", 0, "alice", f"{incident_id}:0:triggered:0:person:alice:0"
    )
    story.pages()

    # dave is the secondary at 09:00; erin takes over at 09:03, before the step fires
    assert notified_at(CHECKOUT.steps[1], story.rules.schedules, T0).people == ("dave",)
    await story.at(5 * MIN)
    assert story.pages() == [
        ("sre-chat", "triggered", 1),
        ("person:erin:0", "triggered", 1),
    ]
    assert await story.timeline(incident_id, *STEPS) == [
        ("incident.paged", {"step": 0, "round": 0, "people": ["alice"], "channels": []}),
        (
            "incident.escalated",
            {"step": 1, "round": 0, "people": ["erin"], "channels": ["sre-chat"]},
        ),
    ]
    return incident_id


class TestEscalationToPeople:
    async def test_primary_then_secondary_after_a_handoff_then_ack_timeout(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        story = Story(pool, rules_dir, CHECKOUT)
        incident_id = await primary_then_secondary(story)

        ack = await actions.acknowledge(
            pool, incident_id, "erin", "api", story.rules, story.clock.now()
        )
        story.metrics.acknowledged(ack)
        await story.engine.run_once()
        assert sorted(story.pages()) == [
            ("person:alice:0", "acknowledged", 1),
            ("person:erin:0", "acknowledged", 1),
            ("sre-chat", "acknowledged", 1),
        ]
        seconds = "stormwatch_time_to_acknowledge_seconds_sum"
        assert story.sample(seconds, {"severity": "critical"}) == 300

        stale = await story.at(15 * MIN)  # step 2 would be due now: the ack stopped it
        assert [t.decision.reason for t in stale.timers] == ["stale_epoch"]
        assert story.pages() == []

        timed_out = await story.at(35 * MIN)
        assert [t.decision.reason for t in timed_out.timers] == ["ack_timed_out"]
        [again] = story.sent
        assert again == Sent(
            "person:erin:0", "triggered", 1, "erin", f"{incident_id}:2:triggered:1:person:erin:0"
        )
        story.pages()
        [(_, detail)] = await story.timeline(incident_id, "incident.ack_timeout")
        assert detail == {
            "acknowledged_by": "erin",
            "after": "30m",
            "step": 1,
            "people": ["erin"],
            "channels": [],
        }
        state = await pool.fetchval("SELECT state FROM incidents WHERE id = $1", incident_id)
        assert state == "triggered"

        await story.at(45 * MIN)  # escalation goes on from the next step after step 1's delay
        assert story.pages() == [("person:carol:0", "triggered", 2)]

        await actions.resolve(pool, incident_id, "carol", "fixed", story.rules, story.clock.now())
        await story.engine.run_once()
        assert sorted(story.pages()) == [
            ("person:alice:0", "resolved", 2),
            ("person:carol:0", "resolved", 2),
            ("person:erin:0", "resolved", 2),
            ("sre-chat", "resolved", 2),
        ]
        assert story.sample("stormwatch_escalations_total", {"step": "1"}) == 2
        await story.at(3 * 60 * MIN)
        assert story.pages() == []

    async def test_a_schedule_with_nobody_on_call_is_passed_over_at_once(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        policy = EscalationPolicy(
            "oncall",
            (
                EscalationStep(schedules=("nights",), escalate_after=5 * MIN),
                EscalationStep(schedules=("primary",)),
            ),
        )
        story = Story(pool, rules_dir, policy)

        incident_id = await story.open()

        assert story.pages() == [("person:alice:0", "triggered", 1)]
        assert await story.timeline(incident_id, *STEPS) == [
            ("escalation.nobody_on_call", {"step": 0, "round": 0, "schedules": ["nights"]}),
            (
                "incident.escalated",
                {"step": 1, "round": 0, "people": ["alice"], "channels": []},
            ),
        ]
        assert story.sample("stormwatch_escalation_nobody_on_call_total") == 1

    async def test_a_chain_that_repeats_once_runs_twice_then_stops(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        policy = EscalationPolicy(
            "oncall",
            (
                EscalationStep(people=("alice",), escalate_after=5 * MIN),
                EscalationStep(people=("bob",), escalate_after=5 * MIN),
            ),
            repeat=1,
        )
        story = Story(pool, rules_dir, policy)

        incident_id = await story.open()
        for minute in (5, 10, 15, 20, 60):
            await story.at(minute * MIN)

        assert [(s.to, s.step, s.key.split(":", 2)[2]) for s in story.sent] == [
            ("person:alice:0", 0, "triggered:0:person:alice:0"),
            ("person:bob:0", 1, "triggered:1:person:bob:0"),
            ("person:alice:0", 0, "triggered:0r1:person:alice:0"),
            ("person:bob:0", 1, "triggered:1r1:person:bob:0"),
        ]
        rounds = [d["round"] for _, d in await story.timeline(incident_id, *STEPS)]
        assert rounds == [0, 0, 1, 1]


class TestSelfAudit:
    async def test_a_deleted_escalation_timer_is_put_back_and_pages_on_time(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        story = Story(pool, rules_dir, CHECKOUT)
        incident_id = await story.open()
        story.pages()
        deleted = await pool.execute(
            "DELETE FROM timers WHERE incident_id = $1 AND kind = 'escalate' AND fired_at IS NULL",
            incident_id,
        )
        assert deleted == "DELETE 1"

        with capture_logs() as logs:
            await story.at(2 * MIN)
        [(_, detail)] = await story.timeline(incident_id, "audit.repaired")
        assert detail == {
            "problem": "missing_escalation",
            "timer": "escalate",
            "due_at": (T0 + 5 * MIN).isoformat(),
            "step": 1,
            "round": 0,
        }
        assert [e["problem"] for e in logs if e["event"] == "audit.repaired"] == [
            "missing_escalation"
        ]
        labels = {"problem": "missing_escalation"}
        assert story.sample("stormwatch_audit_repairs_total", labels) == 1

        await story.at(5 * MIN - timedelta(seconds=1))
        assert story.pages() == []
        await story.at(5 * MIN)
        assert story.pages() == [
            ("sre-chat", "triggered", 1),
            ("person:erin:0", "triggered", 1),
        ]
        await story.at(8 * MIN)  # audited again: nothing missing, nothing repaired twice
        assert len(await story.timeline(incident_id, "audit.repaired")) == 1

    async def test_a_lost_ack_timeout_is_put_back(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        story = Story(pool, rules_dir, CHECKOUT)
        incident_id = await story.open()
        await actions.acknowledge(pool, incident_id, "alice", "api", story.rules, T0)
        await pool.execute("DELETE FROM timers WHERE kind = 'ack_timeout'")

        await story.at(2 * MIN)
        assert story.pages() == [
            ("person:alice:0", "triggered", 0),
            ("person:alice:0", "acknowledged", 0),
        ]
        [(_, detail)] = await story.timeline(incident_id, "audit.repaired")
        assert (detail["problem"], detail["due_at"]) == (
            "missing_ack_timeout",
            (T0 + 30 * MIN).isoformat(),
        )
        await story.at(30 * MIN)
        assert story.pages() == [("person:alice:0", "triggered", 0)]
