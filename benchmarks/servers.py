"""Starting and stopping the servers under test: the service and the bare aiohttp baseline."""

from __future__ import annotations

import http.client
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 180.0  # first start of the embedded PostgreSQL runs initdb
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    """A server to drive: base URL, webhook token and, when started here, its pid."""

    name: str
    url: str
    token: str
    pid: int | None = None

    @property
    def host(self) -> str:
        """Host part of the URL."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """Port part of the URL."""
        return urlsplit(self.url).port or 80


def get(url: str, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """A plain GET for readiness and metrics (not on the measured path)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll /readyz; a server that dies or never gets ready fails with the tail of its log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if get(url, "/readyz", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"server not ready after {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}"
    )


@contextmanager
def started(
    name: str, argv: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[Target]:
    """Run a server subprocess until the block ends, then SIGTERM it (SIGKILL if it hangs)."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603 - our own interpreter and script
    try:
        _wait_ready(url, process, log)
        yield Target(name, url, env.get("STORMWATCH_WEBHOOK_TOKEN", "none"), process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rules_dir() -> Path:
    """The repository's rules, unless STORMWATCH_RULES_DIR names another set to measure with."""
    return Path(os.environ.get("STORMWATCH_RULES_DIR") or REPO / "rules").resolve()


def start_service(
    stack: ExitStack, scratch: Path, engine: bool = True, extra: dict[str, str] | None = None
) -> Target:
    """The real service on an embedded PostgreSQL in ``scratch``, configured only by us (and
    ``extra`` settings); without ``engine`` it runs as an intake replica
    (``STORMWATCH_RUN_ENGINE=false``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORMWATCH_")}
    env |= {
        "STORMWATCH_HOST": "127.0.0.1",
        "STORMWATCH_PORT": str(port),
        "STORMWATCH_DATA_DIR": str(scratch / "data"),
        "STORMWATCH_RULES_DIR": str(rules_dir()),
        "STORMWATCH_LOG_LEVEL": "warning",
        "STORMWATCH_WEBHOOK_TOKEN": secrets.token_urlsafe(24),
        "STORMWATCH_RUN_ENGINE": "true" if engine else "false",
        **(extra or {}),
    }
    argv = [sys.executable, "-m", "detector", "serve"]
    return stack.enter_context(started("service", argv, env, port, scratch / "service.log"))


def start_bare(stack: ExitStack, scratch: Path) -> Target:
    """The parse-only baseline server."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("bare_server.py")), str(port)]
    return stack.enter_context(started("bare", argv, dict(os.environ), port, scratch / "bare.log"))


def require_loopback(url: str) -> None:
    """Refuse anything but this machine: a load test must not leave it."""
    host = urlsplit(url).hostname or ""
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        raise SystemExit(f"--url must point at the loopback interface, not {host!r}")
