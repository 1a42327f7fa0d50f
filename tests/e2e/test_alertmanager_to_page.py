"""End to end with a real Alertmanager: alert → Alertmanager → webhook → incident → page → resolve.

Starts Debian's ``prometheus-alertmanager`` on 127.0.0.1 (clustering off, storage in a temp dir)
and a real Stormwatch with its engine running on the wall clock.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from detector.app import create_app
from tests.conftest import settings_for
from tests.e2e.tools import tool
from tests.fakes import PageReceiver

pytestmark = pytest.mark.e2e
WEBHOOK_TOKEN = "am-e2e-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def alertmanager_config(webhook_url: str) -> str:
    return f"""
route:
  receiver: stormwatch
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: stormwatch
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: {WEBHOOK_TOKEN}
"""


@pytest.fixture
def alertmanager(tmp_path: Path, stormwatch: str) -> Iterator[str]:
    """A real Alertmanager process delivering to the service; its API URL."""
    binary = tool("prometheus-alertmanager")
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_config(f"{stormwatch}/api/v1/alertmanager"))
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "alertmanager.log").open("w"),
    )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout: float = 20.0) -> None:
    """Poll a readiness endpoint (bounded): the process needs a moment to bind its port."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


def pool_alert(starts_at: datetime, ends_at: datetime | None = None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {
        "labels": {
            "alertname": "PgBouncerPoolSaturated",
            "cluster": "eu-prod-1",
            "database": "shop",
            "severity": "page",
        },
        "annotations": {"summary": "PgBouncer pool shop: no idle server connections"},
        "startsAt": starts_at.isoformat(),
    }
    if ends_at is not None:
        body["endsAt"] = ends_at.isoformat()
    return [body]


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
