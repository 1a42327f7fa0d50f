"""Ingest benchmark: how many Alertmanager webhooks Stormwatch stores durably per second.

Every 2xx the service sends means the alerts are committed, so the figure that matters is 2xx
answers per second and the latency to them. Runs, each ``--duration`` seconds and at most
``--max-requests`` webhooks (a hard stop follows ``--grace`` seconds after the deadline):

a) 5-alert webhooks at maximum rate over ``--concurrency`` keep-alive connections (closed loop);
b) 5-alert webhooks offered at a fixed ``--rate`` (open loop), latency from send to 2xx;
c) ``--large-alerts``-alert groups (a big incident: one notification carries the whole group).

``--replay-share`` of the requests repeat an earlier payload byte for byte, as Alertmanager does
on retries, repeat intervals and from HA peers. Runs a) and c) also go to a parse-only aiohttp
server (``bare_server.py``) to show what validation and the commit cost on top of plain
aiohttp. Afterwards ``GET /metrics`` must show exactly one ``accepted`` alert per distinct alert
answered 2xx and one ``duplicate`` per replayed alert; a mismatch exits 1.

Without ``--url`` the service is started here (``python -m detector serve``, i.e. ``stormwatch
serve``, with an embedded PostgreSQL in a fresh temporary directory, a free port, a random
webhook token, the repository's rules or STORMWATCH_RULES_DIR) and stopped with SIGTERM. Between
runs the engine's backlog is worked off so that one run's leftovers do not slow the next. All
traffic stays on the loopback interface.

    python benchmarks/ingest.py --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import ipaddress
import json
import multiprocessing
import os
import platform
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from multiprocessing.pool import Pool
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

WEBHOOK_PATH = "/api/v1/alertmanager"
REPO = Path(__file__).resolve().parent.parent
TARGET_WEBHOOKS = 4000
TARGET_ALERTS = 20000
TARGET_P99_MS = 15.0
SCHEDULE_SLACK_S = 0.002  # an open-loop request sent later than this after its slot is late
REPLAY_WINDOW = 256  # replays repeat one of the last groups sent, as retries and repeats do
GROUP_MARK = "~G~"  # where the 10-hex-digit group number goes in a payload template
ZERO_TIME = "0001-01-01T00:00:00Z"  # endsAt of every firing alert in a webhook
READY_TIMEOUT_S = 180.0  # first start of the embedded PostgreSQL runs initdb
STOP_TIMEOUT_S = 30.0
GROUPS = (
    ("HighRequestLatency", "checkout"),
    ("KubePodCrashLooping", "cart"),
    ("HTTPErrorRateHigh", "payments"),
    ("NodeFilesystemSpaceFillingUp", "search"),
    ("RedisMemoryHigh", "sessions"),
    ("KafkaConsumerLagHigh", "orders"),
    ("CertificateExpiringSoon", "storefront"),
    ("QueueBacklogGrowing", "order-emails"),
)


# --- payloads -------------------------------------------------------------------------------


def _alert(
    name: str, service: str, index: int, tag: str, times: tuple[str, str]
) -> dict[str, object]:
    """One alert as Alertmanager 0.25 writes it; every fifth one has resolved."""
    resolved = index % 5 == 4
    return {
        "status": "resolved" if resolved else "firing",
        "labels": {
            "alertname": name,
            "cluster": "eu-prod-1",
            "instance": f"10.1.{index // 250}.{index % 250}:9100",
            "job": service,
            "namespace": "shop",
            "pod": f"{service}-{GROUP_MARK}-{index:04d}",
            "service": service,
            "severity": "warning",
        },
        "annotations": {
            "summary": f"{name} on {service} pod {index}",
            "description": f"{name} has been active for {service} in eu-prod-1 for 5 minutes.",
            "runbook_url": f"https://runbooks.example.com/{service}/{name}",
        },
        "startsAt": times[0],
        "endsAt": times[1] if resolved else ZERO_TIME,
        "generatorURL": f"http://prometheus.example.internal:9090/graph?g0.expr={name}&g0.tab=1",
        "fingerprint": f"{tag}{GROUP_MARK}{index:04x}",
    }


def request_template(
    variant: int, alerts: int, tag: str, times: tuple[str, str], authority: str, token: str
) -> tuple[str, ...]:
    """A whole HTTP request split at the group number, so rendering one costs a join.

    The body is Go's compact JSON with ``&`` escaped and a trailing newline; the fingerprint is
    ``tag`` (run and worker) + group + alert index, so every group's alerts are distinct.
    """
    name, service = GROUPS[variant % len(GROUPS)]
    labels = {"alertname": name, "service": service}
    body = {
        "receiver": "stormwatch",
        "status": "firing",
        "alerts": [_alert(name, service, i, tag, times) for i in range(alerts)],
        "groupLabels": {**labels, "group": GROUP_MARK},
        "commonLabels": {**labels, "cluster": "eu-prod-1", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.internal:9093",
        "version": "4",
        "groupKey": f'{{}}/{{severity="warning"}}:{{alertname="{name}", group="{GROUP_MARK}"}}',
        "truncatedAlerts": 0,
    }
    text = (json.dumps(body, separators=(",", ":")) + "\n").replace("&", "\\u0026")
    length = len(text) + (text.count(GROUP_MARK) * (10 - len(GROUP_MARK)))
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: Alertmanager/0.25.0\r\n"
        f"Content-Length: {length}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    return tuple((head + text).split(GROUP_MARK))


class Feed:
    """What to send next: fresh groups in order, and a share of byte-identical replays.

    Requests are rendered on demand (a join) instead of being stored, so memory stays flat
    however long the run; a replay re-renders an earlier group number, which gives the same bytes.
    """

    def __init__(
        self, templates: list[tuple[str, ...]], replay_share: float, seed: int, limit: int
    ) -> None:
        self._templates = templates
        self._replay_share = replay_share
        self._rng = random.Random(seed)
        self._recent: deque[int] = deque(maxlen=REPLAY_WINDOW)
        self._next_group = 0
        self._left = limit

    def next(self) -> tuple[int, bytes] | None:
        """The group number and request bytes, or None once the count bound is reached."""
        if self._left <= 0:
            return None
        self._left -= 1
        if self._recent and self._rng.random() < self._replay_share:
            group = self._recent[self._rng.randrange(len(self._recent))]
        else:
            group = self._next_group
            self._next_group += 1
            self._recent.append(group)
        parts = self._templates[group % len(self._templates)]
        return group, f"{group:010x}".join(parts).encode()


# --- HTTP client ----------------------------------------------------------------------------


def _content_length(head: bytearray) -> int:
    """The body size announced in a response head (0 when absent, as for 204)."""
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    end = head.find(b"\r\n", start + 2)
    return int(head[start + 17 : end if end >= 0 else len(head)])


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time, like Go's client.

    Hand-rolled because the load generator shares 2 cores with the server under test: aiohttp's
    client measured 114 µs of CPU per webhook, this one 37 µs. It expects Content-Length
    responses, which is what aiohttp servers send.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to write requests to."""
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the request in flight: its outcome is unknown."""
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("connection closed"))

    def data_received(self, data: bytes) -> None:
        """Complete the waiting request once its whole response is in."""
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        size = end + 4 + _content_length(self._buffer[:end])
        if len(self._buffer) < size:
            return
        status = int(self._buffer[9:12])
        del self._buffer[:size]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(status)

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write one request; the future gives the response status."""
        assert self._transport is not None
        self._waiter = self._loop.create_future()
        self._transport.write(request)
        return self._waiter


async def connect(host: str, port: int) -> HttpConnection:
    """Open a connection (asyncio sets TCP_NODELAY)."""
    _, protocol = await asyncio.get_running_loop().create_connection(HttpConnection, host, port)
    return protocol


# --- one worker's share of a run -----------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs; plain data so it pickles."""

    mode: str  # "closed" or "open"
    host: str
    port: int
    token: str
    connections: int
    rate: float
    duration: float
    grace: float
    max_requests: int
    alerts: int
    replay_share: float
    tag: int
    times: tuple[str, str]
    start_at: float  # time.monotonic() value, shared by all worker processes


@dataclass
class Tally:
    """What one worker saw in one run; the parent merges them."""

    alerts: int
    ok: int = 0
    acked_groups: set[int] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    offered: int = 0
    late: int = 0
    unsent: int = 0
    started: float = 0.0
    finished: float = 0.0
    client_cpu: float = 0.0

    def record(self, group: int, status: int, latency: float) -> None:
        """Count one answered request; only 2xx means stored."""
        self.finished = time.monotonic()
        if 200 <= status < 300:
            self.ok += 1
            self.acked_groups.add(group)
            self.latencies.append(latency)
        else:
            self.failures[f"HTTP {status}"] += 1


class Driver:
    """Sends one worker's share of a run from one event loop."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.tally = Tally(spec.alerts)
        authority = f"{spec.host}:{spec.port}"
        tag = f"{spec.tag:02x}"
        templates = [
            request_template(v, spec.alerts, tag, spec.times, authority, spec.token)
            for v in range(len(GROUPS))
        ]
        self.feed = Feed(templates, spec.replay_share, spec.tag, spec.max_requests)

    async def run(self) -> Tally:
        """Connect, wait for the common start, drive, and let in-flight requests finish."""
        spec = self.spec
        connections = [await connect(spec.host, spec.port) for _ in range(spec.connections)]
        await asyncio.sleep(max(0.0, spec.start_at - time.monotonic()))
        cpu = time.process_time()
        self.tally.started = self.tally.finished = time.monotonic()
        deadline = self.tally.started + spec.duration
        if spec.mode == "open":
            tasks = await self._open_loop(connections, deadline)
        else:
            tasks = [asyncio.create_task(self._keep_sending(c, deadline)) for c in connections]
        await self._finish(tasks, deadline + spec.grace)
        self.tally.client_cpu = time.process_time() - cpu
        return self.tally

    async def _keep_sending(self, connection: HttpConnection | None, deadline: float) -> None:
        """Closed loop: the next request leaves as soon as the previous answer is in."""
        while time.monotonic() < deadline:
            if connection is None or connection.closed:
                connection = await self._reconnect(deadline)
                continue
            item = self.feed.next()
            if item is None:
                return
            await self._exchange(connection, *item)

    async def _open_loop(
        self, idle: list[HttpConnection], deadline: float
    ) -> list[asyncio.Task[None]]:
        """Offer requests on a fixed schedule whatever the answers do; count misses."""
        interval = 1.0 / self.spec.rate
        tasks: list[asyncio.Task[None]] = []
        for slot in range(int(self.spec.rate * self.spec.duration)):
            due = self.tally.started + slot * interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self.tally.offered += 1
            item = self.feed.next() if idle and time.monotonic() < deadline else None
            if item is None:
                self.tally.unsent += 1
                continue
            if time.monotonic() - due > SCHEDULE_SLACK_S:
                self.tally.late += 1
            tasks.append(asyncio.create_task(self._exchange_and_return(idle, *item, deadline)))
        return tasks

    async def _exchange_and_return(
        self, idle: list[HttpConnection], group: int, request: bytes, deadline: float
    ) -> None:
        """Open loop: borrow an idle connection, and give it (or a fresh one) back after."""
        connection = idle.pop()
        await self._exchange(connection, group, request)
        replacement = await self._reconnect(deadline) if connection.closed else connection
        if replacement is not None:
            idle.append(replacement)

    async def _exchange(self, connection: HttpConnection, group: int, request: bytes) -> None:
        """One request and its answer, latency measured from the write.

        Failures after which the server may have stored the alerts anyway are named "unknown",
        so a durability mismatch they cause is not mistaken for lost alerts.
        """
        sent = time.monotonic()
        try:
            status = await connection.send(request)
        except ConnectionError:
            self.tally.failures["connection lost (outcome unknown)"] += 1
            return
        except asyncio.CancelledError:
            self.tally.failures["unanswered at hard stop (outcome unknown)"] += 1
            raise
        self.tally.record(group, status, time.monotonic() - sent)

    async def _reconnect(self, deadline: float) -> HttpConnection | None:
        """Keep the connection count when the server closes one; give up at the deadline."""
        while time.monotonic() < deadline:
            try:
                return await connect(self.spec.host, self.spec.port)
            except OSError:
                self.tally.failures["connect failed"] += 1
                await asyncio.sleep(0.05)
        return None

    @staticmethod
    async def _finish(tasks: list[asyncio.Task[None]], hard_stop: float) -> None:
        """Give requests in flight until the hard stop, then cancel them (counted unknown)."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, hard_stop - time.monotonic()))
        for task in pending:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome


def run_worker(spec: WorkerSpec) -> Tally:
    """Process-pool entry point: one event loop per worker process."""
    return asyncio.run(Driver(spec).run())


# --- runs and their figures ----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measured run: a) closed loop, b) open loop, c) large groups."""

    key: str
    title: str
    mode: str
    alerts: int
    connections: int
    rate: float = 0.0


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile in milliseconds (0 for no samples)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


@dataclass
class Report:
    """The merged figures of one run against one server."""

    run: Run
    tallies: list[Tally]
    cpu: CpuUse

    @property
    def ok(self) -> int:
        """Webhooks answered 2xx."""
        return sum(t.ok for t in self.tallies)

    @property
    def elapsed(self) -> float:
        """From the common start to the last answer."""
        return max(t.finished for t in self.tallies) - min(t.started for t in self.tallies)

    @property
    def webhooks_per_s(self) -> float:
        """2xx webhooks per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def alerts_per_s(self) -> float:
        """Alerts in 2xx webhooks per second (replays included: they were stored too)."""
        return self.webhooks_per_s * self.run.alerts

    @property
    def distinct_alerts(self) -> int:
        """Distinct alerts answered 2xx; groups are disjoint across workers and runs."""
        return sum(len(t.acked_groups) for t in self.tallies) * self.run.alerts

    @property
    def failures(self) -> Counter[str]:
        """Non-2xx answers and requests whose outcome is unknown, by kind."""
        return sum((t.failures for t in self.tallies), Counter())

    @property
    def server_us_per_webhook(self) -> float | None:
        """Server process CPU per 2xx webhook: steadier than throughput on a shared machine."""
        if self.cpu.server is None or not self.ok:
            return None
        return self.cpu.server * self.cpu.wall / self.ok * 1e6

    def cpu_text(self) -> str:
        """Cores per process and machine load, as one phrase."""
        server = ""
        if self.cpu.server is not None:
            server = f"server process {self.cpu.server:.2f} cores"
            server += f" ({self.server_us_per_webhook or 0:,.0f} µs per webhook), "
        rest = self.cpu.machine * (os.cpu_count() or 1) - (self.cpu.server or 0) - self.cpu.client
        return (
            f"{server}load generator {self.cpu.client:.2f} cores, everything else "
            f"(PostgreSQL, kernel, other work) {max(0.0, rest):.2f} cores; "
            f"machine {self.cpu.machine:.0%} busy"
        )

    def latency_ms(self) -> tuple[float, float]:
        """p50 and p99 from send to 2xx."""
        ordered = sorted(x for t in self.tallies for x in t.latencies)
        return _percentile(ordered, 0.50), _percentile(ordered, 0.99)

    def describe(self) -> str:
        """The lines printed after the run."""
        p50, p99 = self.latency_ms()
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        lines = [
            f"  {self.webhooks_per_s:,.0f} webhooks/s, {self.alerts_per_s:,.0f} alerts/s "
            f"answered 2xx ({self.ok:,} webhooks in {self.elapsed:.2f} s); "
            f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            f"  errors: {errors}",
            f"  CPU: {self.cpu_text()}",
        ]
        if self.run.mode == "open":
            offered = sum(t.offered for t in self.tallies)
            unsent = sum(t.unsent for t in self.tallies)
            late = sum(t.late for t in self.tallies)
            lines.append(
                f"  off schedule: {unsent + late:,} of {offered:,} "
                f"({unsent:,} not sent: all connections busy; {late:,} sent > "
                f"{SCHEDULE_SLACK_S * 1000:.0f} ms late)"
            )
        return "\n".join(lines)


# --- CPU accounting from /proc --------------------------------------------------------------


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _process_ticks(pid: int | None) -> int:
    """User + system jiffies of one process (0 when unknown)."""
    if pid is None:
        return 0
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def idle_check() -> str:
    """How busy the machine is before we start: another workload makes every figure low."""
    busy, total = _machine_ticks()
    time.sleep(1.0)
    busy_after, total_after = _machine_ticks()
    share = (busy_after - busy) / max(1, total_after - total)
    warning = "" if share < 0.1 else " - OTHER PROCESSES ARE BUSY: figures will be low and noisy"
    return f"idle:    machine {share:.0%} busy in the second before the runs{warning}"


@dataclass(frozen=True)
class CpuUse:
    """Cores busy during a run; ``server`` is None when the server was not started here."""

    server: float | None
    client: float
    machine: float
    wall: float


class CpuMeter:
    """Where the CPU went during a run: server process, load generator, whole machine.

    Shown with every run because on 2 cores the three compete, and a figure means little
    without knowing whether the server or the machine was saturated.
    """

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._machine = _machine_ticks()
        self._process = _process_ticks(pid)
        self._wall = time.monotonic()

    def read(self, tallies: list[Tally]) -> CpuUse:
        """Cores used since construction; the client's figure comes from the workers."""
        busy, total = _machine_ticks()
        wall = time.monotonic() - self._wall
        server = (_process_ticks(self._pid) - self._process) / os.sysconf("SC_CLK_TCK") / wall
        return CpuUse(
            server=server if self._pid else None,
            client=sum(t.client_cpu for t in tallies) / wall,
            machine=(busy - self._machine[0]) / max(1, total - self._machine[1]),
            wall=wall,
        )


# --- servers --------------------------------------------------------------------------------


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


def start_service(stack: ExitStack, scratch: Path) -> Target:
    """The real service on an embedded PostgreSQL in ``scratch``, configured only by us."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORMWATCH_")}
    env |= {
        "STORMWATCH_HOST": "127.0.0.1",
        "STORMWATCH_PORT": str(port),
        "STORMWATCH_DATA_DIR": str(scratch / "data"),
        "STORMWATCH_RULES_DIR": str(rules_dir()),
        "STORMWATCH_LOG_LEVEL": "warning",
        "STORMWATCH_WEBHOOK_TOKEN": secrets.token_urlsafe(24),
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


# --- metrics --------------------------------------------------------------------------------


def counters(url: str) -> dict[str, float]:
    """Alertmanager signals by intake outcome, plus ``processed`` (all engine outcomes)."""
    status, text = get(url, "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stormwatch_signals_received_total" and (
                sample.labels.get("source") == "alertmanager"
            ):
                outcome = sample.labels["outcome"]
                values[outcome] = values.get(outcome, 0.0) + sample.value
            elif sample.name == "stormwatch_signals_processed_total":
                values["processed"] = values.get("processed", 0.0) + sample.value
    return values


def wait_for_engine(url: str, timeout: float) -> str:
    """Let the engine work off the stored backlog, so the next run does not compete with it."""
    started_at = time.monotonic()
    first = counters(url)
    backlog = first.get("accepted", 0) - first.get("processed", 0)
    while time.monotonic() - started_at < timeout:
        now = counters(url)
        if now.get("processed", 0) >= now.get("accepted", 0):
            waited = time.monotonic() - started_at
            return f"engine backlog of {backlog:,.0f} signals processed in {waited:.1f} s"
        time.sleep(0.25)
    return f"engine backlog not processed within {timeout:.0f} s (runs may overlap with it)"


@dataclass(frozen=True)
class Verdict:
    """Metrics deltas against what the client knows it had stored."""

    accepted: float
    duplicates: float
    expected_accepted: int
    expected_duplicates: int
    unknown: int

    @property
    def ok(self) -> bool:
        """Both counters exactly as expected, and something was stored to check at all."""
        expected = (self.expected_accepted, self.expected_duplicates)
        return self.expected_accepted > 0 and (self.accepted, self.duplicates) == expected

    @property
    def word(self) -> str:
        """OK or MISMATCH."""
        return "OK" if self.ok else "MISMATCH"

    def describe(self) -> str:
        """One line per counter plus the verdict."""
        verdict = self.word
        if not self.ok and self.unknown:
            verdict += f" ({self.unknown} requests had an unknown outcome)"
        return (
            f"  accepted  {self.accepted:,.0f} (distinct alerts answered 2xx: "
            f"{self.expected_accepted:,})\n  duplicate {self.duplicates:,.0f} "
            f"(replayed alerts answered 2xx: {self.expected_duplicates:,})\n  durability: {verdict}"
        )


def verify(url: str, before: dict[str, float], reports: list[Report]) -> Verdict:
    """Compare the service's intake counters with the 2xx answers the client received."""
    after = counters(url)
    distinct = sum(r.distinct_alerts for r in reports)
    answered = sum(r.ok * r.run.alerts for r in reports)
    unknown = sum(v for r in reports for k, v in r.failures.items() if "unknown" in k)
    return Verdict(
        accepted=after.get("accepted", 0) - before.get("accepted", 0),
        duplicates=after.get("duplicate", 0) - before.get("duplicate", 0),
        expected_accepted=distinct,
        expected_duplicates=answered - distinct,
        unknown=unknown,
    )


# --- orchestration --------------------------------------------------------------------------


def _share(total: int, parts: int, index: int) -> int:
    """Worker ``index``'s part of ``total`` split as evenly as integers allow."""
    return total // parts + (1 if index < total % parts else 0)


def execute(pool: Pool, target: Target, run: Run, args: argparse.Namespace, serial: int) -> Report:
    """Run one measurement across the worker processes and print its figures."""
    print(f"[{target.name}] {run.key}) {run.title}", flush=True)
    start_at = time.monotonic() + 1.0  # workers connect first, then all start together
    specs = [
        WorkerSpec(
            mode=run.mode,
            host=target.host,
            port=target.port,
            token=target.token,
            connections=_share(run.connections, args.workers, w),
            rate=run.rate / args.workers,
            duration=args.duration,
            grace=args.grace,
            max_requests=_share(args.max_requests, args.workers, w),
            alerts=run.alerts,
            replay_share=args.replay_share,
            tag=serial * 16 + w,
            times=args.times,
            start_at=start_at,
        )
        for w in range(args.workers)
    ]
    pending = pool.map_async(run_worker, specs)
    time.sleep(max(0.0, start_at - time.monotonic()))
    meter = CpuMeter(target.pid)
    tallies = pending.get(args.duration + args.grace + 60)
    report = Report(run, tallies, meter.read(tallies))
    print(report.describe(), flush=True)
    return report


def plan(args: argparse.Namespace) -> dict[str, Run]:
    """Runs a), b) and c) as the options shape them."""
    return {
        "a": Run(
            "a",
            f"{args.alerts}-alert webhooks at maximum rate, {args.concurrency} connections",
            "closed",
            args.alerts,
            args.concurrency,
        ),
        "b": Run(
            "b",
            f"{args.alerts}-alert webhooks offered at {args.rate:,.0f}/s (open loop), "
            f"up to {args.concurrency} connections",
            "open",
            args.alerts,
            args.concurrency,
            args.rate,
        ),
        "c": Run(
            "c",
            f"{args.large_alerts:,}-alert groups at maximum rate, "
            f"{args.large_concurrency} connections",
            "closed",
            args.large_alerts,
            args.large_concurrency,
        ),
    }


def drive_service(
    pool: Pool, service: Target, runs: dict[str, Run], args: argparse.Namespace
) -> tuple[dict[str, Report], Verdict]:
    """Runs a), b), c) against the service, the engine's backlog worked off after each."""
    before = counters(service.url)
    reports: dict[str, Report] = {}
    for serial, run in enumerate(runs.values(), start=1):
        reports[run.key] = execute(pool, service, run, args, serial)
        print("  " + wait_for_engine(service.url, args.drain_timeout), flush=True)
    verdict = verify(service.url, before, list(reports.values()))
    print(f"[{service.name}] GET /metrics after the runs:\n{verdict.describe()}", flush=True)
    return reports, verdict


# --- output ---------------------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return None


def header(args: argparse.Namespace) -> str:
    """Machine, software and the exact command, so anyone can rerun and compare."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    packages = ("aiohttp", "asyncpg", "pydantic", "pgserver")
    versions = ", ".join(v for v in map(_version, packages) if v)
    service = args.url or f"python -m detector serve, embedded PostgreSQL, rules {rules_dir()}"
    return "\n".join(
        [
            f"# Stormwatch ingest benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"machine: {os.cpu_count()} cores ({model}), "
            f"{platform.system()} {platform.release()} {platform.machine()}",
            f"python:  {platform.python_version()} ({platform.python_implementation()}), "
            f"{versions}",
            f"command: {shlex.join(sys.orig_argv)}",
            f"load:    {args.duration:g} s per run (hard stop {args.grace:g} s later, at most "
            f"{args.max_requests:,} webhooks), {args.replay_share:.0%} byte-identical replays, "
            f"{args.workers} client process(es), HTTP/1.1 keep-alive over loopback",
            f"service: {service}",
            idle_check(),
        ]
    )


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _ratio(service: float, bare: float) -> str:
    return f"{service / bare:.2f}" if bare else "-"


def _micros(value: float | None) -> str:
    return f"{value:,.0f} µs" if value is not None else "-"


Row = tuple[str, str, str, str, str]


def _max_rate_rows(a: Report, bare: Report, args: argparse.Namespace) -> list[Row]:
    """Run a): throughput against the targets, latency, and server CPU per webhook."""
    p50, p99 = a.latency_ms()
    bare_p50, bare_p99 = bare.latency_ms()
    return [
        (
            f"a) webhooks/s durable ({args.alerts} alerts, {args.concurrency} conns)",
            f">= {TARGET_WEBHOOKS:,}",
            f"{a.webhooks_per_s:,.0f} ({_mark(a.webhooks_per_s >= TARGET_WEBHOOKS)})",
            f"{bare.webhooks_per_s:,.0f}",
            _ratio(a.webhooks_per_s, bare.webhooks_per_s),
        ),
        (
            "a) alerts/s durable",
            f">= {TARGET_ALERTS:,}",
            f"{a.alerts_per_s:,.0f} ({_mark(a.alerts_per_s >= TARGET_ALERTS)})",
            f"{bare.alerts_per_s:,.0f}",
            _ratio(a.alerts_per_s, bare.alerts_per_s),
        ),
        (
            "a) latency p50 / p99",
            "",
            f"{p50:.1f} / {p99:.1f} ms",
            f"{bare_p50:.1f} / {bare_p99:.1f} ms",
            "",
        ),
        (
            "a) server process CPU per webhook",
            "",
            _micros(a.server_us_per_webhook),
            _micros(bare.server_us_per_webhook),
            _ratio(a.server_us_per_webhook or 0, bare.server_us_per_webhook or 0),
        ),
    ]


def _fixed_rate_rows(b: Report, args: argparse.Namespace) -> list[Row]:
    """Run b): latency at the offered rate, and whether the client kept the schedule."""
    p50, p99 = b.latency_ms()
    offered = sum(t.offered for t in b.tallies)
    off = sum(t.unsent + t.late for t in b.tallies)
    met = _mark(p99 <= TARGET_P99_MS and off == 0)
    return [
        (
            f"b) latency p50 / p99 at {args.rate:,.0f} webhooks/s offered",
            f"p99 <= {TARGET_P99_MS:g} ms",
            f"{p50:.1f} / {p99:.1f} ms ({met})",
            "",
            "",
        ),
        ("b) webhooks not sent on schedule", "0", f"{off:,} of {offered:,}", "", ""),
    ]


def summary(
    service: dict[str, Report], bare: dict[str, Report], verdict: Verdict, args: argparse.Namespace
) -> str:
    """A Markdown table for the README: figures, targets, and service against bare aiohttp."""
    c = service["c"]
    rows: list[Row] = [
        ("figure", "target", "service", "bare aiohttp", "service/bare"),
        ("---", "---", "---", "---", "---"),
        *_max_rate_rows(service["a"], bare["a"], args),
        *_fixed_rate_rows(service["b"], args),
        (
            f"c) alerts/s durable ({args.large_alerts:,}-alert groups, "
            f"{args.large_concurrency} conns)",
            "",
            f"{c.alerts_per_s:,.0f} ({c.webhooks_per_s:,.1f} webhooks/s)",
            f"{bare['c'].alerts_per_s:,.0f}",
            _ratio(c.alerts_per_s, bare["c"].alerts_per_s),
        ),
        (
            "accepted / duplicate in /metrics = sent",
            "exact",
            f"{verdict.accepted:,.0f} / {verdict.duplicates:,.0f} ({verdict.word})",
            "",
            "",
        ),
    ]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


# --- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    """Options; every default is what the README's figures were taken with."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument("--url", help="a running service on loopback (default: start one here)")
    p.add_argument(
        "--token",
        default=os.environ.get("STORMWATCH_WEBHOOK_TOKEN", ""),
        help="webhook token for --url (default: STORMWATCH_WEBHOOK_TOKEN)",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    p.add_argument("--concurrency", type=int, default=64, help="connections in runs a) and b)")
    p.add_argument("--rate", type=float, default=2000.0, help="webhooks/s offered in run b)")
    p.add_argument("--alerts", type=int, default=5, help="alerts per webhook in runs a) and b)")
    p.add_argument("--large-alerts", type=int, default=1000, help="alerts per webhook in run c)")
    p.add_argument("--large-concurrency", type=int, default=8, help="connections in run c)")
    p.add_argument("--replay-share", type=float, default=0.3, help="share of replayed webhooks")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=range(1, 17),
        metavar="1-16",
        help="client processes (1 leaves the most CPU to the server on 2 cores)",
    )
    p.add_argument("--max-requests", type=int, default=500_000, help="webhooks per run at most")
    p.add_argument("--grace", type=float, default=5.0, help="seconds for answers after a run")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the engine's backlog between runs",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed and checked options, plus the alert times shared by every worker."""
    p = _parser()
    args = p.parse_args(argv)
    if min(args.duration, args.rate, args.grace) <= 0 or not 0 <= args.replay_share < 1:
        p.error("duration, rate and grace must be positive, replay share in [0, 1)")
    if min(args.concurrency, args.large_concurrency) < args.workers:
        p.error("every worker needs a connection: concurrency must be >= workers")
    if not 1 <= min(args.alerts, args.large_alerts) <= max(args.alerts, args.large_alerts) < 65536:
        p.error("alerts per webhook must be between 1 and 65535")
    if args.url:
        require_loopback(args.url)
    now = datetime.now(UTC)
    args.times = tuple(  # unique per invocation, so reruns against one database stay distinct
        f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
        for t in (now - timedelta(minutes=10), now - timedelta(minutes=1))
    )
    return args


def measure(
    args: argparse.Namespace, scratch: Path
) -> tuple[dict[str, Report], dict[str, Report], Verdict]:
    """The bare baseline first, then the service; servers stop when the block ends."""
    runs = plan(args)
    with ExitStack() as stack:
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(args.workers))
        bare_server = start_bare(stack, scratch)
        bare = {k: execute(pool, bare_server, runs[k], args, 8 + i) for i, k in enumerate("ac")}
        if args.url:
            service = Target("service", args.url.rstrip("/"), args.token)
        else:
            service = start_service(stack, scratch)
        reports, verdict = drive_service(pool, service, runs, args)
    return reports, bare, verdict


def keep_logs(scratch: Path) -> None:
    """Keep the server and PostgreSQL logs for a failed run; drop the database (hundreds of MB)."""
    pg_log = scratch / "data" / "pgdata" / "log"  # where pgserver has PostgreSQL write its log
    if pg_log.is_file():
        shutil.copy(pg_log, scratch / "postgresql.log")
    shutil.rmtree(scratch / "data", ignore_errors=True)
    print(f"\nlogs kept in {scratch}: {', '.join(sorted(p.name for p in scratch.iterdir()))}")


def main(argv: list[str] | None = None) -> int:
    """Run everything; exit 1 if the service's counters disagree with what it acknowledged.

    Server logs (and the embedded database with its log) are kept when anything failed.
    """
    args = parse_args(argv)
    print(header(args), flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="stormwatch-bench-"))
    try:
        reports, bare, verdict = measure(args, scratch)
    except BaseException:
        keep_logs(scratch)
        raise
    print("\n" + summary(reports, bare, verdict, args))
    if verdict.ok and not any(r.failures for r in reports.values()):
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        keep_logs(scratch)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
