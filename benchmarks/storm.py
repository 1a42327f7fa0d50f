"""Storm benchmark: an alert storm through a real Alertmanager into Stormwatch, and an unrelated
incident opened in the middle of it.

For each N (``--alerts``, default 2,000 and 20,000), Alertmanager (Debian's
``prometheus-alertmanager``, ``group_by: ['...']``, ``group_wait: 0s``: one webhook per alert,
all at once) receives N ``PgBouncerPoolSaturated`` alerts over 20 databases of one cluster,
posted to its ``/api/v2/alerts`` in batches. It delivers them first to a parse-and-count
receiver in its own process (``null_receiver.py``), then to Stormwatch (``python -m detector
serve`` with the repository's rules, its engine in its own process, on a PostgreSQL started
here). Two seconds into the Stormwatch storm a ``PaymentGatewayErrorRateHigh`` alert follows,
which the shipped rules turn into an incident of its own. Printed per N, side by side:

- seconds until the null receiver had answered every webhook of the storm; until Stormwatch had
  (it answers 2xx once the alert is committed: durable), both counted by Alertmanager, so
  measuring costs neither receiver anything; until Stormwatch's engine had processed every
  alert of the storm (the intake log empty, none queued or in a group's backlog);
- seconds from posting the unrelated alert to its incident being open (looked for every
  10 ms from the posting on);
- Alertmanager's failed webhook attempts (``alertmanager_notifications_failed_total``), and
  ``/readyz`` answers other than 200 while the storm lasted;
- CPU seconds of the engine process per alert, of the intake process, of PostgreSQL and of
  Alertmanager (and of the null receiver and its Alertmanager).

    python benchmarks/storm.py
    python benchmarks/storm.py --alerts 2000 --alerts 20000
    python benchmarks/storm.py --references 3   # the null receiver three times per N

With ``--references K`` the null receiver runs K times per N, back to back, before Stormwatch:
the ratios stay those to its first run, and a line more says how far its own times strayed
(slowest against quickest) and when the unrelated alert reached it each time.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import alertmanager
import asyncpg
from cpu_usage import children, idle_check, machine_busy, machine_ticks, tree_cpu_seconds
from servers import free_port, get, start_service, started
from storm_figures import (
    NullFigures,
    Readiness,
    ServiceTimes,
    StormFigures,
    reference_spread,
    report,
)

from detector.store.embedded import EmbeddedPostgres

DATABASES = 20
UNRELATED_AFTER_S = 2.0
POLL_S = 0.1
OPENED_POLL_S = 0.01
"""How often the unrelated incident is looked for, from its alert's posting on: at ``POLL_S``
the poll alone added up to a tenth of a second to a figure whose target is one second, and a
few hundred small queries cost the storm nothing measurable."""


def storm(count: int, run: str) -> list[dict[str, Any]]:
    """``count`` distinct saturated pools over 20 databases of the shop-prod cluster."""
    starts = datetime.now(UTC).isoformat()
    return [
        {
            "labels": {
                "alertname": "PgBouncerPoolSaturated",
                "severity": "page",
                "service": "pgbouncer",
                "cluster": "shop-prod",
                "database": f"orders_{n % DATABASES:02d}",
                "pool": f"{run}-{n}",
            },
            "annotations": {"summary": f"PgBouncer pool {run}-{n} has no free server connection"},
            "startsAt": starts,
            "generatorURL": "http://prometheus.example:9090/graph",
        }
        for n in range(count)
    ]


def unrelated(run: str) -> dict[str, Any]:
    """A payment gateway failing: another rule, another incident."""
    return {
        "labels": {
            "alertname": "PaymentGatewayErrorRateHigh",
            "severity": "page",
            "service": "checkout",
            "cluster": "shop-prod",
            "server_address": f"psp-{run}.example",
        },
        "annotations": {"summary": "Calls to the payment provider failing"},
        "startsAt": datetime.now(UTC).isoformat(),
        "generatorURL": "http://prometheus.example:9090/graph",
    }


async def reached(check: Any, deadline: float, every: float = POLL_S) -> float | None:
    """When (``time.monotonic()``) the async ``check`` first held, or None by ``deadline``."""
    while time.monotonic() < deadline:
        if await check():
            return time.monotonic()
        await asyncio.sleep(every)
    return None


async def _one_then_other(first: Any, then: Any, budget: float) -> tuple[float | None, ...]:
    """When ``first`` held, then when ``then`` did (polled only from the first on: the engine
    cannot have processed the storm before it was durable)."""
    deadline = time.monotonic() + budget
    return await reached(first, deadline), await reached(then, deadline)


def _after(start: float, moment: float | None) -> float | None:
    return None if moment is None else moment - start


async def null_run(count: int, scratch: Path, budget: float, name: str) -> NullFigures:
    """Alertmanager to the parse-and-count receiver; ``name`` tells its files apart."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("null_receiver.py")), str(port)]
    with ExitStack() as stack:
        log = scratch / f"{name}.log"
        receiver = stack.enter_context(started("null", argv, {}, port, log))
        am = stack.enter_context(alertmanager.running(scratch, name, receiver.url, "x"))
        pids = (receiver.pid or 0, am.pid)
        before = _cpu(*pids)
        async with aiohttp.ClientSession() as session:
            counts: dict[str, Any] = {}

            async def unrelated_arrived() -> bool:
                async with session.get(f"{receiver.url}/count") as response:
                    counts.update(await response.json())
                return "PaymentGatewayErrorRateHigh" in counts["first"]

            start = time.monotonic()
            answering = asyncio.create_task(
                reached(_all_answered(session, am.url, count), start + budget)
            )
            posted_at = await _storm_then_unrelated(
                session,
                am.url,
                count,
                f"null{count}",
                partial(reached, unrelated_arrived, start + budget),
            )
            answered = await answering
        after = _cpu(*pids)
        arrived = counts.get("first", {}).get("PaymentGatewayErrorRateHigh")
        sent = alertmanager.delivery(am.url)
        return NullFigures(
            _after(start, answered),
            sent.failed,
            None if arrived is None else arrived - posted_at.timestamp(),
            receiver_cpu=after[0] - before[0],
            alertmanager_cpu=after[1] - before[1],
            connections=sent.connections,
        )


def _all_answered(
    session: aiohttp.ClientSession, am: str, count: int
) -> Callable[[], Awaitable[bool]]:
    """A check: Alertmanager has ``count`` webhooks answered 2xx (for Stormwatch: durable)."""

    async def check() -> bool:
        return await alertmanager.answered(session, am) >= count

    return check


async def _storm_then_unrelated(
    session: aiohttp.ClientSession,
    am: str,
    count: int,
    run: str,
    watch: Callable[[], Awaitable[Any]],
) -> datetime:
    """Post the storm, and the unrelated alert two seconds in, watched from then on by
    ``watch()``; when that alert was posted (returned once the storm is posted and the watch
    done)."""
    posting = asyncio.create_task(alertmanager.post(session, am, storm(count, run)))
    await asyncio.sleep(UNRELATED_AFTER_S)
    posted_at = datetime.now(UTC)
    watching = asyncio.ensure_future(watch())
    await alertmanager.post(session, am, [unrelated(run)])
    await asyncio.gather(posting, watching)
    return posted_at


class Watch:
    """What the Stormwatch run polls: readiness and the database while the storm lasts, its
    metrics once it is over."""

    def __init__(self, url: str, database: asyncpg.Pool, session: aiohttp.ClientSession) -> None:
        self._url = url
        self._db = database
        self._session = session
        self.readiness = Readiness()
        self.opened_at: datetime | None = None  # when a poll first saw it
        self.received_at: datetime | None = None

    async def metrics(self) -> str:
        """The service's ``/metrics`` text."""
        async with self._session.get(f"{self._url}/metrics") as response:
            return await response.text()

    async def service_times(self) -> ServiceTimes:
        """From the service's histograms: webhook answer times (received to answered) and
        intake commits (how many, the webhooks they held, their times)."""
        return ServiceTimes.from_metrics(await self.metrics())

    async def processed(self) -> bool:
        """Nothing of the storm left for the engine: the intake log empty, no storm signal
        queued or in a group's backlog (the unrelated alert, posted two seconds in, may still
        wait: at N = 2,000 the storm is over before it comes)."""
        waiting = await self._db.fetchval(
            """SELECT (SELECT count(*) FROM intake_log)
                    + (SELECT count(*) FROM pending_signals p JOIN signals s ON s.id = p.signal_id
                       WHERE s.name = 'PgBouncerPoolSaturated')
                    + (SELECT count(*) FROM group_backlog b JOIN signals s ON s.id = b.signal_id
                       WHERE s.name = 'PgBouncerPoolSaturated')"""
        )
        return bool(waiting == 0)

    async def opened(self) -> bool:
        """The unrelated alert's incident is open (committed); when its alert was received."""
        if self.opened_at is None:
            received_at = await self._db.fetchval(
                """SELECT s.received_at FROM incidents i
                   JOIN incident_alerts a ON a.incident_id = i.id
                   JOIN signals s ON (s.fingerprint, s.starts_at) = (a.fingerprint, a.starts_at)
                   WHERE i.rule = 'payment-gateway-errors'"""
            )
            if received_at is not None:
                self.opened_at, self.received_at = datetime.now(UTC), received_at
        return self.opened_at is not None

    async def ask_readiness(self) -> None:
        """Ask /readyz twice a second until cancelled, counting answers other than 200."""
        while True:
            try:
                status, _ = await asyncio.to_thread(get, self._url, "/readyz", 5.0)
            except OSError:
                self.readiness.unanswered += 1
            else:
                if status == 200:
                    self.readiness.ready += 1
                else:
                    self.readiness.not_ready += 1
            await asyncio.sleep(0.5)


def _cpu(*pids: int) -> tuple[float, ...]:
    return tuple(tree_cpu_seconds(pid) for pid in pids)


async def stormwatch_run(count: int, scratch: Path, url: str, budget: float) -> StormFigures:
    """Alertmanager to Stormwatch, with the unrelated alert two seconds in."""
    run = f"sw{count}"
    (scratch / run).mkdir()
    with ExitStack() as stack:
        service = start_service(stack, scratch / run, extra={"STORMWATCH_DATABASE_URL": url})
        intake = service.pid or 0
        engine = next(c for c in children(intake) if _is_engine(c))
        postmaster = int((scratch / "pg" / "pgdata" / "postmaster.pid").read_text().split()[0])
        am = stack.enter_context(alertmanager.running(scratch, run, service.url, service.token))
        database = await asyncpg.create_pool(url, min_size=1, max_size=3)
        pids = (engine, intake, postmaster, am.pid)
        before, machine = _cpu(*pids), machine_ticks()
        async with aiohttp.ClientSession() as session:
            watch = Watch(service.url, database, session)
            all_durable = _all_answered(session, am.url, count)
            readiness = asyncio.create_task(watch.ask_readiness())
            start = time.monotonic()
            storing = asyncio.create_task(_one_then_other(all_durable, watch.processed, budget))
            opening = partial(reached, watch.opened, start + budget, OPENED_POLL_S)
            posted_at = await _storm_then_unrelated(session, am.url, count, run, opening)
            durable, processed = await storing
            readiness.cancel()
            after, busy = _cpu(*pids), machine_busy(machine)
            times = await watch.service_times()
            sent = alertmanager.delivery(am.url)
        await database.close()
        return StormFigures(
            durable=_after(start, durable),
            processed=_after(start, processed),
            unrelated=_between(posted_at, watch.opened_at),
            unrelated_received=_between(posted_at, watch.received_at),
            failed=sent.failed,
            connections=sent.connections,
            readiness=watch.readiness,
            engine_cpu=after[0] - before[0],
            intake_cpu=after[1] - before[1] - (after[0] - before[0]),  # the engine is its child
            postgres_cpu=after[2] - before[2],
            alertmanager_cpu=after[3] - before[3],
            machine_busy=busy,
            times=times,
        )


def _between(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds()


def _is_engine(pid: int) -> bool:
    try:
        return b"engine_runner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def fresh_database(server: str, name: str) -> str:
    """A new database on the benchmark's PostgreSQL, so each run starts empty."""
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return server.replace("/postgres?", f"/{name}?", 1)


async def measure(args: argparse.Namespace, scratch: Path) -> int:
    """Every N: the null receiver, then Stormwatch; print as they finish."""
    database = EmbeddedPostgres(scratch / "pg")
    server = await database.start()
    per_signal: dict[int, float] = {}
    try:
        for count in args.alerts:
            nulls = [
                await null_run(count, scratch, args.budget, f"null-{count}-{k}")
                for k in range(args.references)
            ]
            url = await fresh_database(server, f"storm_{count}")
            sw = await stormwatch_run(count, scratch, url, args.budget)
            per_signal[count] = sw.engine_cpu / (count + 1)
            print(report(count, nulls[0], sw), flush=True)
            if len(nulls) > 1:
                print(reference_spread(nulls), flush=True)
    finally:
        await database.stop()
    if len(per_signal) > 1:
        low, high = min(per_signal), max(per_signal)
        growth = per_signal[high] / per_signal[low]
        print(f"engine CPU per alert at {high:,} / at {low:,}: {growth:.2f}x   target <= 1.5x")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run in a temporary directory that is removed afterwards."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--alerts", type=int, action="append", help="storm size (repeatable)")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per run at most")
    parser.add_argument(
        "--references",
        type=_positive,
        default=1,
        help="null receiver runs per N (default 1): more print how far the reference strays from"
        " itself; the ratios are to the first",
    )
    args = parser.parse_args(argv)
    args.alerts = args.alerts or [2_000, 20_000]
    # Stopped from outside: still stop Alertmanager, the service and PostgreSQL on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(idle_check(), flush=True)
    with tempfile.TemporaryDirectory(prefix="stormwatch-storm-") as scratch:
        return asyncio.run(measure(args, Path(scratch)))


if __name__ == "__main__":
    sys.exit(main())
