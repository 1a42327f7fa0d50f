"""Faults benchmark: how late first pages are when a replica dies or the database flaps, and how
many pages go out twice.

Two ``stormwatch serve`` replicas (each with its engine process) share one PostgreSQL, the
embedded one from ``pgserver`` in a fresh temporary directory; a receiver on 127.0.0.1 records
every page. The same burst (one new alert per webhook, spread over both replicas as a load
balancer would, and sent to the other replica when one does not answer 2xx, as Alertmanager
retries) runs on a fresh database for each case:

  a) no fault: the reference;
  b) one replica killed (SIGKILL to its web and engine processes) once half the burst has been
     answered: the one whose engine holds the most pages leased, i.e. with sends in flight;
  c) PostgreSQL stopped and started again every few seconds during the burst (--flap-cycles,
     0 skips it).

For each: the first page after its alert's 2xx (p50, p99, max), alerts never paged, and pages
delivered twice (same Idempotency-Key) with the longest time between the two sends.

    python benchmarks/faults.py                  # about 3 minutes
    python benchmarks/faults.py --alerts 500 --flap-cycles 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
from faults_figures import Figures, Outages, Receiver, figures
from servers import free_port

from detector.engine.leases import TERM
from detector.service.logs import configure_logging
from detector.store.embedded import EmbeddedPostgres

REPO = Path(__file__).resolve().parent.parent
RULES = """
channels:
  - name: pager
    type: webhook
    url: {url}
escalation_policies:
  - name: oncall
    steps:
      - notify: [pager]
rules:
  - name: pool-exhausted
    match: ['alertname="PgBouncerPoolSaturated"']
    group_by: [cluster]
    severity: critical
    title: "Connection pool exhausted on {{{{ labels.cluster }}}}"
    escalation_policy: oncall
"""
WINDOW_S = TERM.total_seconds() + 5
"""docs/operations.md, *Delivery after a crash*: a page sent again goes within this of the first
send (the lease's term, the next cycle and the send)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument("--alerts", type=int, default=2000, help="alerts in each burst")
    p.add_argument("--rate", type=float, default=100.0, help="new alerts per second")
    p.add_argument("--flap-cycles", type=int, default=10, help="database stops in run c)")
    p.add_argument("--receiver-delay", type=float, default=0.2, help="seconds to answer a page")
    p.add_argument("--settle", type=float, default=90.0, help="seconds to wait for late pages")
    return p


class Replica:
    """One ``python -m detector serve`` on the shared database."""

    def __init__(self, name: str, url: str, rules: Path, scratch: Path) -> None:
        self.port = free_port()
        self.log = scratch / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORMWATCH_")}
        env |= {
            "PYTHONPATH": str(REPO),
            "STORMWATCH_DATABASE_URL": url,
            "STORMWATCH_PORT": str(self.port),
            "STORMWATCH_DATA_DIR": str(scratch / name),
            "STORMWATCH_RULES_DIR": str(rules),
            "STORMWATCH_LOG_LEVEL": "info",  # the engine's pid and lease owner name
        }
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "detector", "serve"], env=env, stdout=sink, stderr=sink
            )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(600):
            if self.process.poll() is not None:
                raise RuntimeError(f"replica exited:\n{self.log.read_text()[-2000:]}")
            try:
                async with session.get(f"http://127.0.0.1:{self.port}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("replica not ready in 120 s")

    def logged(self, event: str, key: str) -> object:
        """``key`` of the last ``event`` in this replica's log, or None."""
        found = None
        for line in self.log.read_text().splitlines():
            if f'"{event}"' in line:
                found = json.loads(line).get(key)
        return found

    def kill(self) -> None:
        """SIGKILL the engine process and the web process, as a crash of the machine would."""
        engine = self.logged("engine.process_started", "pid")
        if isinstance(engine, int):
            os.kill(engine, signal.SIGKILL)
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _webhook(cluster: str) -> dict[str, object]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "PgBouncerPoolSaturated", "cluster": cluster},
        "annotations": {},
        "startsAt": "2026-11-27T09:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"{abs(hash(cluster)):016x}"[:16],
    }
    return {"version": "4", "status": "firing", "receiver": "stormwatch", "groupKey": "{}",
            "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "", "alerts": [alert]}  # fmt: skip


async def burst(
    session: aiohttp.ClientSession,
    ports: list[int],
    args: argparse.Namespace,
    halfway: Callable[[], Awaitable[None]],
) -> dict[str, float]:
    """Send the burst; each alert's 2xx time, by cluster. ``halfway`` runs once half is in."""
    answered: dict[str, float] = {}
    started = time.monotonic()

    async def send(number: int) -> None:
        cluster = f"b{number}"
        for attempt in range(600):
            port = ports[(number + attempt) % len(ports)]
            url = f"http://127.0.0.1:{port}/api/v1/alertmanager"
            try:
                async with session.post(url, json=_webhook(cluster)) as answer:
                    if answer.status == 200:
                        answered[cluster] = time.monotonic()
                        if len(answered) == args.alerts // 2:
                            await halfway()
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)

    tasks = []
    for number in range(args.alerts):
        await asyncio.sleep(max(0.0, started + number / args.rate - time.monotonic()))
        tasks.append(asyncio.create_task(send(number)))
    await asyncio.gather(*tasks)
    return answered


@dataclass(frozen=True)
class Scene:
    """What a fault acts on: the server, the case's database, its replicas; ``outages`` is
    filled in as the database is stopped and started."""

    db: EmbeddedPostgres
    url: str
    replicas: list[Replica]
    outages: Outages


async def _nothing(_scene: Scene) -> None:
    return None


@dataclass(frozen=True)
class Case:
    """A fault: ``halfway`` runs once half the burst is answered, ``alongside`` with the burst."""

    name: str
    halfway: Callable[[Scene], Awaitable[None]] = _nothing
    alongside: Callable[[Scene], Awaitable[None]] = _nothing


async def kill_busiest(scene: Scene) -> None:
    """Kill the replica whose engine holds the most pages leased: sends in flight."""
    connection = await asyncpg.connect(scene.url)
    try:
        rows = await connection.fetch(
            "SELECT lease_owner, count(*) AS n FROM outbox"
            " WHERE state = 'pending' AND lease_owner IS NOT NULL GROUP BY lease_owner"
        )
    finally:
        await connection.close()
    leased = {row["lease_owner"]: row["n"] for row in rows}
    victim = max(scene.replicas, key=lambda r: leased.get(r.logged("engine.started", "owner"), 0))
    victim.kill()


def flapping(cycles: int) -> Callable[[Scene], Awaitable[None]]:
    """Stop PostgreSQL ``cycles`` times from the burst's start: 1.5 s up, then stopped (fast
    shutdown), started again after 1 s (starting takes a second or more)."""

    async def flap(scene: Scene) -> None:
        for _ in range(cycles):
            await asyncio.sleep(1.5)
            down = time.monotonic()
            await scene.db.stop()
            await asyncio.sleep(1.0)
            await scene.db.start()
            scene.outages.append((down, time.monotonic()))

    return flap


async def run_case(
    number: int, case: Case, db: EmbeddedPostgres, url: str, scratch: Path, args: argparse.Namespace
) -> Figures:
    """One burst on a fresh database with two fresh replicas and a fresh receiver."""
    database = f"faults_{number}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    receiver = Receiver(args.receiver_delay)
    runner = await receiver.start()
    home = scratch / database
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "pager.yml").write_text(RULES.format(url=receiver.url))
    target = url.replace("/postgres?", f"/{database}?", 1)
    scene = Scene(
        db, target, [Replica(f"r{n}", target, home / "rules", home) for n in range(2)], []
    )
    try:
        async with aiohttp.ClientSession() as session:
            for replica in scene.replicas:
                await replica.ready(session)
            alongside = asyncio.create_task(case.alongside(scene))
            ports = [r.port for r in scene.replicas]
            answered = await burst(session, ports, args, lambda: case.halfway(scene))
            await alongside  # the database is up for good from here
        await _settle(receiver, answered, target, args.settle)
        return figures(case.name, answered, receiver, scene.outages)
    finally:
        for replica in scene.replicas:
            replica.stop()
        await runner.cleanup()


async def _settle(receiver: Receiver, answered: dict[str, float], url: str, within: float) -> None:
    """Wait (bounded) until every answered alert has had its page and no page waits in the
    outbox (sent again, if a crash left it unrecorded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if not set(answered) <= {cluster for _, _, cluster in receiver.pages}:
            continue
        try:
            connection = await asyncpg.connect(url)
            try:
                waiting = await connection.fetchval(
                    "SELECT count(*) FROM outbox WHERE state = 'pending'"
                )
            finally:
                await connection.close()
        except (OSError, asyncpg.PostgresError):
            continue
        if waiting == 0:
            return


async def main(args: argparse.Namespace) -> None:
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="stormwatch-faults-") as tmp:
        scratch = Path(tmp)
        db = EmbeddedPostgres(scratch / "db")
        url = await db.start()
        cases = [Case("a) no fault"), Case("b) one replica killed halfway", halfway=kill_busiest)]
        if args.flap_cycles:
            stopped = f"c) database stopped {args.flap_cycles}x"
            cases.append(Case(stopped, alongside=flapping(args.flap_cycles)))
        rows = []
        try:
            for number, case in enumerate(cases):
                rows.append(await run_case(number, case, db, url, scratch, args))
                print(rows[-1].row(), flush=True)
        finally:
            await db.stop()
    print(
        f"\n{args.alerts} alerts at {args.rate:g}/s, two replicas, receiver answering in"
        f" {args.receiver_delay:g} s; first page after its alert's 2xx, in seconds"
    )
    print(
        "| case | answered 2xx | never paged | p50 | p99 | max | database down |"
        " p99 beyond outages | sent twice | longest gap |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(row.row())
    print(
        "\nbeyond outages: lateness less the time the database was down in between; sent"
        f" twice: pages delivered twice, the longest gap between the two sends (the window"
        f" for that is {WINDOW_S:.0f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main(_parser().parse_args()))
