"""End to end with a real Alertmanager: alert → Alertmanager → webhook → incident → page → resolve.

Starts Debian's ``prometheus-alertmanager`` on 127.0.0.1 (clustering off, storage in a temp dir)
and a real Stormwatch with its engine running on the wall clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from detector.service.app import create_app
from tests.conftest import settings_for
from tests.e2e.alertmanager_process import (
    WEBHOOK_TOKEN,
    free_port,
    pool_alert,
    running_alertmanager,
    wait_ready,
)
from tests.fakes import PageReceiver

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stormwatch(database_url: str, rules_dir: Path) -> AsyncIterator[str]:
    """A running service on a free loopback port with its engine on."""
    port = free_port()
    settings = settings_for(
        database_url,
        rules_dir,
        run_engine=True,
        webhook_token=WEBHOOK_TOKEN,
        port=port,
        engine_interval="200ms",
    )
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def alertmanager(tmp_path: Path, stormwatch: str) -> Iterator[str]:
    """A real Alertmanager process delivering to the service; its API URL."""
    with running_alertmanager(tmp_path, f"{stormwatch}/api/v1/alertmanager") as url:
        yield url


class TestAlertmanagerToPage:
    async def test_alert_pages_and_resolution_resolves(
        self, stormwatch: str, alertmanager: str, pager: PageReceiver
    ) -> None:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"{alertmanager}/-/ready")
            started = datetime.now(UTC)
            posted = await session.post(f"{alertmanager}/api/v2/alerts", json=pool_alert(started))
            assert posted.status == 200, await posted.text()

            [page] = await pager.wait_for(1)
            assert page["event"] == "triggered"
            assert page["incident"]["title"] == "Connection pool exhausted on eu-prod-1"
            assert page["incident"]["summary"] == "PgBouncer pool shop: no idle server connections"
            incident_id = page["incident"]["id"]

            resolved = await session.post(
                f"{alertmanager}/api/v2/alerts", json=pool_alert(started, ends_at=datetime.now(UTC))
            )
            assert resolved.status == 200
            pages = await pager.wait_for(2)
            assert [p["event"] for p in pages] == ["triggered", "resolved"]

            async with session.get(f"{stormwatch}/api/v1/incidents/{incident_id}") as response:
                detail = await response.json()
        assert detail["state"] == "resolved"
        assert detail["resolved_by"] == "stormwatch"
        assert [a["status"] for a in detail["alerts"]] == ["resolved"]
