"""A stage of our own, handed to a real engine: it runs every cycle after the standard stages,
fails alone, and is timed and counted like them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer
from detector.engine.stage import CycleContext, Lane, Stage
from detector.ruleset.live import LiveRules
from detector.service.metrics import Metrics
from detector.web.ack_links import LinkBuilder
from tests.fakes import FakeClock

STANDARD = [
    "rules_change",
    "signals",
    "timers",
    "notices",
    "deliveries",
    "audit",
    "retention",
    "gauges",
    "statistics",
]


@dataclass(frozen=True)
class Visit:
    """The stub stage's report: which cycle it was, written to ``log`` when recorded."""

    cycle: int
    log: list[int] = field(repr=False)
    busy: bool = False

    def record(self, metrics: Metrics) -> None:
        self.log.append(self.cycle)


class Visitor:
    """Notes the context of every run; raises in the cycles named in ``fail_in``."""

    lane = Lane.UPKEEP

    def __init__(self, name: str, fail_in: frozenset[int] = frozenset()) -> None:
        self.name = name
        self.fail_in = fail_in
        self.contexts: list[CycleContext] = []
        self.recorded: list[int] = []

    async def run(self, context: CycleContext) -> Visit:
        self.contexts.append(context)
        cycle = len(self.contexts)
        if cycle in self.fail_in:
            raise RuntimeError(f"{self.name} broke in cycle {cycle}")
        return Visit(cycle, self.recorded)


class Broken:
    name = "broken"
    lane = Lane.UPKEEP

    async def run(self, context: CycleContext) -> Visit:
        raise RuntimeError("always")


class Rig:
    """An engine on the test database with its own metrics and clock, and extra stages."""

    def __init__(self, pool: asyncpg.Pool, rules_dir: Path, *extra: Stage) -> None:
        self.clock = FakeClock()
        self.metrics = Metrics()
        rules = LiveRules(rules_dir, lambda _: {}, self.clock.now)
        links = LinkBuilder("https://sw.example", b"k", timedelta(hours=1), self.clock)
        self.engine = Engine(
            pool,
            lambda: rules.routes,
            Deliverer(links, random.Random(7)),
            self.clock,
            self.metrics,
            owner="engine-a",
            extra_stages=extra,
        )

    def sample(self, name: str, stage: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, {"stage": stage})


class TestAnExtraStage:
    async def test_runs_every_cycle_with_the_time_and_rules_of_that_cycle(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        visitor = Visitor("visitor")
        rig = Rig(pool, rules_dir, visitor)

        first = await rig.engine.run_once()
        rig.clock.advance(timedelta(minutes=1))
        rig.engine.rules_changed()
        second = await rig.engine.run_once()

        assert list(first.stages) == [*STANDARD, "visitor"]
        assert second.stages["visitor"] == Visit(2, visitor.recorded)
        assert visitor.recorded == [1, 2], "each report counted itself"
        assert [(c.now, c.owner, c.rules_generation) for c in visitor.contexts] == [
            (rig.clock.now() - timedelta(minutes=1), "engine-a", 1),
            (rig.clock.now(), "engine-a", 2),
        ]
        assert not second.busy

    async def test_a_failing_stage_stops_neither_the_others_nor_the_next_cycle(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        visitor = Visitor("visitor", fail_in=frozenset({1}))
        after = Visitor("after")
        rig = Rig(pool, rules_dir, Broken(), visitor, after)

        first = await rig.engine.run_once()
        second = await rig.engine.run_once()

        assert list(first.stages) == [*STANDARD, "after"]
        assert list(second.stages) == [*STANDARD, "visitor", "after"]
        assert visitor.recorded == [2]
        assert len(after.contexts) == 2
        errors = "stormwatch_engine_errors_total"
        assert rig.sample(errors, "broken") == 2
        assert rig.sample(errors, "visitor") == 1
        assert rig.sample(errors, "after") is None
        assert rig.sample(errors, "signals") is None

    async def test_is_timed_like_every_stage_failed_runs_included(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        rig = Rig(pool, rules_dir, Broken(), Visitor("visitor"))

        for _ in range(3):
            await rig.engine.run_once()

        for stage in [*STANDARD, "broken", "visitor"]:
            assert rig.sample("stormwatch_engine_stage_seconds_count", stage) == 3, stage

    async def test_must_not_share_a_name_with_another(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        with pytest.raises(ValueError, match="name of its own"):
            Rig(pool, rules_dir, Visitor("signals"))
