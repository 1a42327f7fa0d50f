"""A real Alertmanager for end-to-end tests: Debian's ``prometheus-alertmanager`` on 127.0.0.1,
clustering off, storage in a temp dir, delivering webhooks to the service under test."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.tools import tool

WEBHOOK_TOKEN = "am-e2e-token"


def free_port() -> int:
    """A loopback port nobody listens on (until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alertmanager_config(webhook_url: str) -> str:
    """Short group timers so a test sees notifications within seconds."""
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


@contextmanager
def running_alertmanager(
    tmp_path: Path, webhook_url: str, port: int | None = None
) -> Iterator[str]:
    """Run Alertmanager (skip the test without the binary) and yield its API URL."""
    binary = tool("prometheus-alertmanager")
    port = port or free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_config(webhook_url))
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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
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
    """The body for Alertmanager's ``POST /api/v2/alerts``: one PgBouncer pool alert."""
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
