"""A real Alertmanager for the storm benchmark: Debian's ``prometheus-alertmanager`` on
127.0.0.1, clustering off, every alert its own group (``group_by: ['...']``) sent at once
(``group_wait: 0s``), one alert per webhook, to the receiver under test."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from servers import free_port, get

READY_TIMEOUT_S = 30.0
POST_BATCH = 500

CONFIG = """\
global:
  resolve_timeout: 1h  # alerts are posted without endsAt: none resolves during a run
route:
  receiver: target
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: target
    webhook_configs:
      - url: {url}/api/v1/alertmanager
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""
_FAILED = re.compile(
    r'^alertmanager_notifications_failed_total\{[^}]*integration="webhook"[^}]*\} (\S+)$'
)
_CONNECTIONS = re.compile(
    r'^net_conntrack_dialer_conn_established_total\{dialer_name="webhook"\} (\S+)$'
)
_REQUESTS = re.compile(
    r'^alertmanager_notification_requests(_failed)?_total\{[^}]*integration="webhook"[^}]*\}'
    r" (\S+)$",
    re.M,
)


@dataclass(frozen=True)
class Alertmanager:
    """A running Alertmanager: its base URL and process id."""

    url: str
    pid: int


@contextmanager
def running(scratch: Path, name: str, url: str, token: str) -> Iterator[Alertmanager]:
    """Alertmanager delivering to ``url`` until the block ends."""
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        raise SystemExit("needs Debian's prometheus-alertmanager (apt-get install it)")
    home = scratch / f"alertmanager-{name}"
    home.mkdir()
    (home / "alertmanager.yml").write_text(CONFIG.format(url=url, token=token))
    port = free_port()
    with (home / "alertmanager.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the packaged binary, our own arguments
            [
                binary,
                f"--config.file={home / 'alertmanager.yml'}",
                f"--storage.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield Alertmanager(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"alertmanager exited with {process.returncode}")
        try:
            if get(base, "/-/ready", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("alertmanager not ready")


async def post(session: aiohttp.ClientSession, base: str, alerts: list[dict[str, Any]]) -> None:
    """Hand ``alerts`` to Alertmanager's API, ``POST_BATCH`` to a request, as Prometheus does."""
    for start in range(0, len(alerts), POST_BATCH):
        async with session.post(
            f"{base}/api/v2/alerts", json=alerts[start : start + POST_BATCH]
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"alertmanager refused alerts: {response.status}")


@dataclass(frozen=True)
class Delivery:
    """How Alertmanager's webhook sends went, from its own metrics once a storm is over."""

    failed: float
    """``alertmanager_notifications_failed_total`` of the webhook integration, all reasons."""
    connections: float
    """Connections it opened to the receiver (``net_conntrack_dialer_conn_established_total``):
    each costs both sides CPU, and how many a storm opens varies from run to run."""


def delivery(base: str) -> Delivery:
    """Failed webhook attempts and connections opened so far."""
    _, text = get(base, "/metrics")
    lines = text.splitlines()
    return Delivery(
        failed=sum(float(m.group(1)) for m in map(_FAILED.match, lines) if m),
        connections=sum(float(m.group(1)) for m in map(_CONNECTIONS.match, lines) if m),
    )


async def answered(session: aiohttp.ClientSession, base: str) -> float:
    """Webhook requests the receiver answered 2xx: Alertmanager's requests less its failed ones,
    both counted once the answer is in. The same count for every receiver, read from the
    sender, so measuring costs the receiver under test nothing."""
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    requests = failed = 0.0
    for is_failed, value in _REQUESTS.findall(text):
        if is_failed:
            failed += float(value)
        else:
            requests += float(value)
    return requests - failed
