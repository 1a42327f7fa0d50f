"""Readiness names the part of Stormwatch that fails, and /metrics exports every check, so
Prometheus sees Stormwatch in trouble even where nothing probes /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector.service.app import create_app
from detector.web.ops import ENGINE
from tests.conftest import Shop, settings_for
from tests.fakes import FakeClock

ENGINE_OFF = {"state": "off", "detail": "not run here (STORMWATCH_RUN_ENGINE=false)"}


async def _readiness(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status, await response.json()


async def _check_samples(client: TestClient) -> list[str]:
    text = await (await client.get("/metrics")).text()
    return [line for line in text.splitlines() if line.startswith("stormwatch_readiness_check{")]


class TestReadiness:
    async def test_a_ready_replica_lists_every_check(self, shop: Shop) -> None:
        assert await _readiness(shop.client) == (
            200,
            {
                "status": "ready",
                "rules": 2,
                "checks": {
                    "database": {"state": "ok"},
                    "engine": ENGINE_OFF,
                    "rules": {"state": "ok"},
                },
            },
        )
        assert await _check_samples(shop.client) == [
            'stormwatch_readiness_check{check="database"} 1.0',
            'stormwatch_readiness_check{check="rules"} 1.0',
        ]

    async def test_without_its_database_a_replica_is_not_ready(self, shop: Shop) -> None:
        await shop.services.pool.close()
        status, body = await _readiness(shop.client)
        assert (status, body["status"]) == (503, "database unreachable")
        assert body["checks"]["database"] == {
            "state": "failing",
            "detail": "unreachable (InterfaceError)",
        }
        assert 'stormwatch_readiness_check{check="database"} 0.0' in await _check_samples(
            shop.client
        )

    async def test_a_rejected_rule_edit_is_reported_and_the_replica_stays_ready(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        """The rules loaded before still run and webhooks are stored: no reason to take the
        replica out of the load balancer, every reason to tell someone."""
        (rules_dir / "shop.yml").write_text("rules: [{name: broken")
        assert (await shop.client.post("/api/v1/rules/reload")).status == 422
        status, body = await _readiness(shop.client)
        assert (status, body["status"]) == (200, "ready")
        assert body["checks"]["rules"]["state"] == "failing"
        assert "last reload was rejected" in body["checks"]["rules"]["detail"]
        assert 'stormwatch_readiness_check{check="rules"} 0.0' in await _check_samples(shop.client)


class _EngineProcess:
    """Stands for the engine process, as readiness sees it."""

    def __init__(self, running: bool) -> None:
        self.running = running


@pytest.fixture
async def engine_client(
    request: pytest.FixtureRequest, database_url: str, rules_dir: Path
) -> AsyncIterator[TestClient]:
    """A replica whose engine process is running or not (``request.param``)."""
    app = create_app(settings_for(database_url, rules_dir), clock=FakeClock())
    app[ENGINE] = _EngineProcess(request.param)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


class TestEngineCheck:
    @pytest.mark.parametrize(
        ("engine_client", "check", "sample"),
        [
            pytest.param(True, {"state": "ok"}, "1.0", id="running"),
            pytest.param(
                False,
                {
                    "state": "failing",
                    "detail": "not running: restarting, or stalled (see engine.* logs)",
                },
                "0.0",
                id="down: reported, and webhooks are still taken",
            ),
        ],
        indirect=["engine_client"],
    )
    async def test_the_engine_process_is_reported_without_deciding_readiness(
        self, engine_client: TestClient, check: dict[str, str], sample: str
    ) -> None:
        status, body = await _readiness(engine_client)
        assert (status, body["checks"]["engine"]) == (200, check)
        samples = await _check_samples(engine_client)
        assert f'stormwatch_readiness_check{{check="engine"}} {sample}' in samples

    async def test_an_engine_in_this_process_is_ok_once_it_cycles(
        self, database_url: str, rules_dir: Path
    ) -> None:
        settings = settings_for(database_url, rules_dir, run_engine=True)
        client = TestClient(TestServer(create_app(settings, clock=FakeClock()), host="127.0.0.1"))
        await client.start_server()
        try:
            for _ in range(200):  # the first cycle starts with the app, 10 s at most
                _, body = await _readiness(client)
                if body["checks"]["engine"] == {"state": "ok"}:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"the engine never cycled: {body}")
        finally:
            await client.close()
