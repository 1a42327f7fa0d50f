"""Paging benchmark: from an alert reaching Stormwatch to the page reaching the person on call.

One run prints, side by side:

- **Reference**: Debian's ``prometheus-alertmanager`` (``group_by: ['...']``, ``group_wait:
  0s``) delivering alerts posted to its API at a steady rate to a local receiver: alert posted →
  webhook at the receiver, p50/p99. Stormwatch sits behind Alertmanager, so this is the hop an
  operator already accepts.
- **Steady**: 50 new incidents a second for ``--seconds``, each one Alertmanager webhook posted
  to Stormwatch (``python -m detector serve``, its engine in its own process, PostgreSQL started
  here): webhook sent → page at the on-call person's webhook contact method (a local receiver),
  p50/p99. Bundling is off here: one person receiving 50 pages a second would get digests.
- **Storm**: 20,000 alerts over 200 incidents, posted as fast as Stormwatch takes them (10
  alerts a webhook, 16 connections), bundling on (its defaults, 5 pages in 2 minutes): first
  alert of an incident sent → that incident at the receiver, alone or in a digest, p50/p99, and
  how many single pages and digests carried them.
- **Timer lag**: 100,000 pending escalations (incidents and their escalation timers written
  straight into the database, due over the next day), of which ``--due`` fall due within the
  measured window: how late each fired (``fired_at - due_at``), p50/p99.

Targets (2 cores): steady p50 <= 20 ms and p99 <= 100 ms; storm p99 <= 2 s; timer lag p99 <= 1 s.

    python benchmarks/paging.py
    python benchmarks/paging.py --seconds 20 --due 2000   # 100 escalations a second
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import alertmanager
import asyncpg
from cpu_usage import idle_check
from engine_figures import hops, stage_times
from paging_receiver import Receiver, latencies, line, percentiles, serve, wait_for
from servers import start_service
from storm import fresh_database

from detector.store.embedded import EmbeddedPostgres

RATE = 50
STORM_ALERTS = 20_000
STORM_INCIDENTS = 200
STORM_BATCH = 10
STORM_CONNECTIONS = 16
PENDING = 100_000
RULE = "bench-page"
PARTS = ("reference", "steady", "storm", "timers")

RULES = """\
rules:
  - name: {rule}
    match: ['alertname="BenchPage"']
    group_by: [incident]
    severity: critical
    title: "Bench incident {{{{ labels.incident }}}}"
    escalation_policy: bench
people:
  - id: bench-oncall
    name: Bench On-call
    time_zone: UTC
    contact_methods:
      - type: webhook
        url: {receiver}/page
schedules:
  - name: bench
    time_zone: UTC
    layers:
      - name: everyone
        members: [bench-oncall]
        shift: 1w
        handoff: "00:00"
        start: 2026-01-05
escalation_policies:
  - name: bench
    steps:
      - targets: [{{schedule: bench}}]
        escalate_after: 10m
      - targets: [{{schedule: bench}}]
"""


def am_alert(labels: dict[str, str]) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager's API."""
    return {"labels": labels, "annotations": {"summary": "bench"}}


async def reference(scratch: Path, seconds: float, receiver: Receiver, url: str) -> list[float]:
    """Alertmanager: alert posted → webhook at the receiver."""
    sent: dict[str, float] = {}
    with alertmanager.running(scratch, "reference", url, "x") as am:
        async with aiohttp.ClientSession() as session:
            async for index in paced(seconds):
                key = f"ref-{index}"
                sent[key] = time.monotonic()
                labels = {"alertname": "BenchReference", "alert": key}
                await alertmanager.post(session, am.url, [am_alert(labels)])
            await wait_for(receiver.arrived, list(sent), 30)
    return latencies(sent, receiver.arrived)[0]


async def paced(seconds: float, rate: int = RATE) -> Any:
    """Yield 0, 1, 2, … at ``rate`` a second for ``seconds`` (open loop: late slots catch up)."""
    start = time.monotonic()
    for index in range(int(seconds * rate)):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield index


def webhook(alerts: list[dict[str, str]], starts: str) -> bytes:
    """An Alertmanager 0.25 webhook carrying ``alerts`` (label sets), all firing."""
    items = [
        {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": "bench"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": f"{abs(hash(tuple(sorted(labels.items())))):016x}",
        }
        for labels in alerts
    ]
    body = {
        "version": "4",
        "groupKey": f"{{}}:{{alert={alerts[0]['alert']!r}}}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "stormwatch",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": items,
    }
    return json.dumps(body).encode()


class Poster:
    """Posts webhooks to the service and fails loudly on anything but 2xx."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self._session = session
        self._url = f"{url}/api/v1/alertmanager"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def post(self, body: bytes) -> None:
        """One webhook; retried on 503 (the service is briefly unavailable)."""
        for _ in range(20):
            async with self._session.post(self._url, data=body, headers=self._headers) as answer:
                await answer.read()
                if answer.status < 300:
                    return
                if answer.status != 503:
                    raise RuntimeError(f"webhook answered {answer.status}")
            await asyncio.sleep(0.1)
        raise RuntimeError("webhook kept answering 503")


def labels(incident: str, alert: str) -> dict[str, str]:
    """One bench alert of ``incident``."""
    return {"alertname": "BenchPage", "incident": incident, "alert": alert, "severity": "page"}


async def steady(poster: Poster, seconds: float, receiver: Receiver) -> tuple[list[float], int]:
    """50 new incidents a second: webhook sent → page at the receiver."""
    sent: dict[str, float] = {}
    starts = datetime.now(UTC).isoformat()
    tasks = []
    async for index in paced(seconds):
        key = f"steady-{index}"
        sent[key] = time.monotonic()
        body = webhook([labels(key, key)], starts)
        tasks.append(asyncio.create_task(poster.post(body)))
    await asyncio.gather(*tasks)
    await wait_for(receiver.arrived, list(sent), 60)
    return latencies(sent, receiver.arrived)


async def storm(poster: Poster, receiver: Receiver) -> tuple[list[float], int]:
    """20,000 alerts over 200 incidents, as fast as they are taken."""
    starts = datetime.now(UTC).isoformat()
    alerts = [labels(f"storm-{n % STORM_INCIDENTS}", f"storm-{n}") for n in range(STORM_ALERTS)]
    batches = [alerts[i : i + STORM_BATCH] for i in range(0, len(alerts), STORM_BATCH)]
    sent: dict[str, float] = {}
    queue: asyncio.Queue[list[dict[str, str]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            now = time.monotonic()
            for alert in batch:
                sent.setdefault(alert["incident"], now)
            await poster.post(webhook(batch, starts))

    await asyncio.gather(*(worker() for _ in range(STORM_CONNECTIONS)))
    await wait_for(receiver.arrived, list(sent), 120)
    return latencies(sent, receiver.arrived)


async def pending_escalations(url: str, due: int, window: float) -> datetime:
    """Write ``PENDING`` open incidents with an escalation timer each: ``due`` of them due over
    the next ``window`` seconds (starting 3 s from now), the rest later today; return when the
    window starts."""
    begin = datetime.now(UTC) + timedelta(seconds=3)
    policy = {
        "name": "bench",
        "repeat": 0,
        "ack_timeout": None,
        "steps": [
            {"channels": [], "people": [], "schedules": ["bench"], "escalate_after": 600.0},
            {"channels": [], "people": [], "schedules": ["bench"], "escalate_after": None},
        ],
    }
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """INSERT INTO incidents (rule, group_key, group_labels, state, severity, title,
                   summary, policy, opened_at, last_signal_at, updated_at)
               SELECT $1, 'pending-' || n, jsonb_build_object('incident', 'pending-' || n),
                   'triggered', 'critical', 'Pending ' || n, '', $2::jsonb, $3, $3, $3
               FROM generate_series(1, $4) AS n""",
            RULE,
            json.dumps(policy),
            begin - timedelta(minutes=5),
            PENDING,
        )
        await connection.execute(
            """INSERT INTO timers (incident_id, kind, due_at, epoch, payload)
               SELECT id, 'escalate', $2::timestamptz + CASE
                   WHEN row_number() OVER (ORDER BY id) <= $1
                   THEN (row_number() OVER (ORDER BY id)) * $3 * interval '1 second'
                   ELSE interval '2 hours' + (id % 79200) * interval '1 second' END,
                   0, '{"step": 1, "round": 0}'::jsonb
               FROM incidents WHERE rule = $4 AND group_key LIKE 'pending-%'""",
            due,
            begin,
            window / due,
            RULE,
        )
    finally:
        await connection.close()
    return begin


async def timer_lags(url: str, begin: datetime, window: float) -> tuple[list[float], int]:
    """How late each timer due in the window fired, and how many had not fired."""
    await asyncio.sleep((begin - datetime.now(UTC)).total_seconds() + window + 5)
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            """SELECT extract(epoch FROM fired_at - due_at) AS lag FROM timers
               WHERE kind = 'escalate' AND due_at BETWEEN $1 AND $2""",
            begin,
            begin + timedelta(seconds=window),
        )
    finally:
        await connection.close()
    lags = [float(row["lag"]) for row in rows if row["lag"] is not None]
    return lags, len(rows) - len(lags)


async def stormwatch_run(
    scratch: Path, server: str, name: str, receiver_url: str, extra: dict[str, str]
) -> tuple[ExitStack, Any, str]:
    """A fresh database and a service on it with the bench rules."""
    rules = scratch / f"rules-{name}"
    rules.mkdir()
    (rules / "bench.yml").write_text(RULES.format(rule=RULE, receiver=receiver_url))
    url = await fresh_database(server, f"paging_{name}")
    stack = ExitStack()
    (scratch / name).mkdir()
    service = start_service(
        stack,
        scratch / name,
        extra={"STORMWATCH_DATABASE_URL": url, "STORMWATCH_RULES_DIR": str(rules), **extra},
    )
    return stack, service, url


async def measure(args: argparse.Namespace, scratch: Path) -> int:
    """Reference, steady, storm and timer lag (those of ``args.parts``); print as they finish."""
    receiver = Receiver()
    runner, receiver_url = await serve(receiver)
    database = EmbeddedPostgres(scratch / "pg")
    server = await database.start()
    ref = None
    try:
        if "reference" in args.parts:
            ref_samples = await reference(scratch, args.seconds, receiver, receiver_url)
            ref = percentiles(ref_samples)
            print(line("Alertmanager: alert posted -> webhook", ref_samples, 0, "(reference)"))
        if "steady" in args.parts:
            no_bundling = {"STORMWATCH_PAGE_BUNDLE_LIMIT": "1000000"}
            stack, service, url = await stormwatch_run(
                scratch, server, "steady", receiver_url, no_bundling
            )
            with stack:
                async with aiohttp.ClientSession() as session:
                    poster = Poster(session, service.url, service.token)
                    samples, lost = await steady(poster, args.seconds, receiver)
                    times = await stage_times(session, service.url)
                times += "\n" + await hops(url)
            target = "p50<=20 p99<=100"
            print(line(f"steady {RATE}/s: webhook -> page", samples, lost, target, ref))
            print(times)
        if "storm" in args.parts:
            receiver.pages = receiver.digests = 0
            stack, service, url = await stormwatch_run(scratch, server, "storm", receiver_url, {})
            with stack:
                async with aiohttp.ClientSession() as session:
                    poster = Poster(session, service.url, service.token)
                    samples, lost = await storm(poster, receiver)
                    times = await stage_times(session, service.url)
                times += "\n" + await hops(url)
            print(line("storm 20,000/200: first alert -> page", samples, lost, "p99<=2000", ref))
            print(f"    carried by {receiver.pages} single pages and {receiver.digests} digests")
            print(times)
        if "timers" in args.parts:
            stack, service, url = await stormwatch_run(scratch, server, "timers", receiver_url, {})
            with stack:
                begin = await pending_escalations(url, args.due, args.window)
                lags, unfired = await timer_lags(url, begin, args.window)
                async with aiohttp.ClientSession() as session:
                    times = await stage_times(session, service.url)
            print(line(f"timer lag, {PENDING:,} pending", lags, unfired, "p99<=1000"))
            print(times)
    finally:
        await runner.cleanup()
        await database.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run in a temporary directory that is removed afterwards."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="steady run length")
    parser.add_argument("--due", type=int, default=200, help="escalations due in the window")
    parser.add_argument("--window", type=float, default=20.0, help="seconds they fall due over")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="which measurements to run (all by default)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(idle_check(), flush=True)
    with tempfile.TemporaryDirectory(prefix="stormwatch-paging-") as scratch:
        return asyncio.run(measure(args, Path(scratch)))


if __name__ == "__main__":
    sys.exit(main())
