"""The dead-man ping: a real engine GETs a checker's URL at most once per interval of its
clock, counts how each ping ended, and goes on cycling when the checker fails or is gone,
without ever writing the URL (it carries the check's key) to a log line."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from detector.engine.cycle import Engine
from detector.engine.deadman import DeadmanStage, PingOutcome
from detector.engine.delivery import Deliverer
from detector.engine.stage import CycleContext
from detector.ruleset.live import LiveRules
from detector.service.impact_wiring import external_stages
from detector.service.metrics import Metrics
from detector.service.settings import Settings
from detector.web.ack_links import LinkBuilder
from tests.fakes import T0, FakeClock

KEY = "5f2c1d9e-check-key"


class Checker:
    """A healthchecks.io-like endpoint on 127.0.0.1: counts pings, answers ``status``."""

    def __init__(self) -> None:
        self.pings = 0
        self.status = 200
        app = web.Application()
        app.router.add_get(f"/ping/{KEY}", self._ping)
        self.server = TestServer(app, host="127.0.0.1")

    async def _ping(self, request: web.Request) -> web.Response:
        self.pings += 1
        return web.Response(status=self.status, text="OK")

    @property
    def url(self) -> str:
        return str(self.server.make_url(f"/ping/{KEY}"))


@pytest.fixture
async def checker() -> AsyncIterator[Checker]:
    found = Checker()
    await found.server.start_server()
    yield found
    await found.server.close()


class TestDeadmanPing:
    async def test_pings_once_per_interval_and_survives_a_failing_checker(
        self, pool: asyncpg.Pool, rules_dir: Path, checker: Checker
    ) -> None:
        clock = FakeClock()
        metrics = Metrics()
        rules = LiveRules(rules_dir, lambda _: {}, clock.now)
        links = LinkBuilder("https://sw.example", b"k", timedelta(hours=1), clock)
        async with aiohttp.ClientSession() as session:
            stage = DeadmanStage(session, SecretStr(checker.url), timedelta(seconds=30))
            engine = Engine(
                pool,
                lambda: rules.routes,
                Deliverer(links, random.Random(7)),
                clock,
                metrics,
                extra_stages=[stage],
            )

            with capture_logs() as logs:
                for seconds in (0, 10, 29, 30, 45, 60):  # pings at 0, 30 and 60
                    clock.advance(T0 + timedelta(seconds=seconds) - clock.now())
                    await engine.run_once()
                assert checker.pings == 3

                checker.status = 503
                clock.advance(timedelta(seconds=30))
                await engine.run_once()
                await checker.server.close()  # the checker is gone altogether
                clock.advance(timedelta(seconds=30))
                report = await engine.run_once()

        assert "deadman" in report.stages, "a failed ping never fails the stage"
        count = "stormwatch_deadman_pings_total"
        assert metrics.registry.get_sample_value(count, {"outcome": "ok"}) == 3
        assert metrics.registry.get_sample_value(count, {"outcome": "failed"}) == 2
        failures = [e for e in logs if e["event"] == "deadman.ping_failed"]
        assert [e.get("status") for e in failures] == [503, None]
        assert failures[1]["error"]
        assert KEY not in repr(logs)

    async def test_is_withheld_while_detection_has_stalled(
        self, pool: asyncpg.Pool, rules_dir: Path, checker: Checker
    ) -> None:
        clock = FakeClock()
        rules = LiveRules(rules_dir, lambda _: {}, clock.now)
        async with aiohttp.ClientSession() as session:
            stage = DeadmanStage(session, SecretStr(checker.url), timedelta(seconds=30))
            context = CycleContext(
                pool, rules.routes, "engine-a", clock.now(), 1, clock, detecting=False
            )
            with capture_logs() as logs:
                stalled = await stage.run(context)
                alive = await stage.run(replace(context, detecting=True))

        assert (stalled.outcome, alive.outcome) == (None, PingOutcome.OK)
        assert checker.pings == 1
        assert [e["event"] for e in logs] == ["deadman.withheld"]


class TestDeadmanSetting:
    async def test_the_stage_runs_only_when_the_url_is_set_and_the_url_stays_secret(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("STORMWATCH_DEADMAN_URL", f" https://hc-ping.example/{KEY}\n")
        monkeypatch.setenv("STORMWATCH_DEADMAN_INTERVAL", "1m")
        configured = Settings()
        async with aiohttp.ClientSession() as session:
            stages = [stage.name for stage in external_stages(configured, session)]
            without = external_stages(Settings(deadman_url=None), session)
            unset = [stage.name for stage in without]

        assert stages == ["impact", "deadman"]
        assert unset == ["impact"]
        assert configured.deadman_interval == timedelta(minutes=1)
        assert KEY not in repr(configured)
