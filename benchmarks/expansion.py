"""Expansion benchmark: how fast the engine turns the intake log into signals, and what it costs.

The ingest benchmark measures what Alertmanager sees (2xx answers); this one measures the engine
behind it, which decides how quickly the backlog of a burst is worked off. It fills the intake
log of an embedded PostgreSQL (fresh temporary directory) with the ingest benchmark's webhooks,
the same payloads and the same share of byte-identical replays, committed 50 requests to a
record as group commit does under load. Then it runs the signal stage until the log is empty,
on one connection, as the engine does, and prints alerts per second and the CPU each alert cost
in this Python process and in its PostgreSQL backend (read from /proc, so Linux only).

    python benchmarks/expansion.py --webhooks 20000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from cpu_usage import process_cpu_seconds
from payloads import GROUPS, Feed, request_template
from servers import rules_dir

from detector.engine import signals as signal_stage
from detector.intake.alertmanager import log_entry, log_record
from detector.ruleset.loader import load_ruleset
from detector.service.logs import configure_logging
from detector.store import intake_log
from detector.store import migrate as migrations
from detector.store.connection import init_connection
from detector.store.embedded import EmbeddedPostgres

REQUESTS_PER_RECORD = 50


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument("--webhooks", type=int, default=20_000, help="webhooks to expand (1-500,000)")
    p.add_argument("--alerts", type=int, default=5, help="alerts per webhook")
    p.add_argument("--replay-share", type=float, default=0.3, help="share of replayed webhooks")
    p.add_argument("--batch", type=int, default=500, help="alerts per engine transaction")
    return p


def bodies(args: argparse.Namespace) -> list[bytes]:
    """Webhook bodies as the load generator would send them, in sending order."""
    now = datetime.now(UTC)
    times = tuple(f"{t:%Y-%m-%dT%H:%M:%S}.000Z" for t in (now - timedelta(minutes=10), now))
    templates = [
        request_template(v, args.alerts, "e0", (times[0], times[1]), "127.0.0.1", "none")
        for v in range(len(GROUPS))
    ]
    feed = Feed(templates, args.replay_share, seed=1, limit=args.webhooks)
    out = []
    while (item := feed.next()) is not None:
        out.append(item[1].split(b"\r\n\r\n", 1)[1])
    return out


async def measure(args: argparse.Namespace, scratch: Path) -> None:
    """Fill the log, expand it, print the figures."""
    rules = load_ruleset(rules_dir())
    database = EmbeddedPostgres(scratch)
    url = await database.start()
    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1, init=init_connection)
        async with pool.acquire() as connection:
            await migrations.migrate(connection)
            received = datetime.now(UTC)
            webhooks = bodies(args)
            for start in range(0, len(webhooks), REQUESTS_PER_RECORD):
                chunk = webhooks[start : start + REQUESTS_PER_RECORD]
                record = log_record([log_entry(body, received) for body in chunk])
                await intake_log.append(
                    connection, received, len(chunk), len(chunk) * args.alerts, record
                )
            backend = await connection.fetchval("SELECT pg_backend_pid()")
        alerts = len(webhooks) * args.alerts
        started = time.perf_counter()
        python = time.process_time()
        postgres = process_cpu_seconds(backend)
        new = unreadable = 0
        while True:
            result = await signal_stage.process_pending(pool, rules, datetime.now(UTC), args.batch)
            if not result.busy:
                break
            new += result.processed
            unreadable += result.expansion.unreadable
        wall = time.perf_counter() - started
        python = time.process_time() - python
        postgres = process_cpu_seconds(backend) - postgres
        await pool.close()
    finally:
        await database.stop()
    if unreadable:
        raise SystemExit(f"{unreadable} intake log records could not be read back")
    print(f"{len(webhooks):,} webhooks, {alerts:,} alerts ({new:,} new, the rest replays)")
    print(f"expanded in {wall:.1f} s: {alerts / wall:,.0f} alerts/s on one engine connection")
    print(
        f"CPU per alert: engine {python / alerts * 1e6:.1f} µs,"
        f" its PostgreSQL backend {postgres / alerts * 1e6:.1f} µs"
    )


def main(argv: list[str] | None = None) -> int:
    """Run in a temporary directory that is removed afterwards."""
    args = _parser().parse_args(argv)
    configure_logging("console", "warning")
    if not 1 <= args.webhooks <= 500_000 or not 0 <= args.replay_share < 1:
        _parser().error("webhooks must be 1-500,000 and replay share in [0, 1)")
    with tempfile.TemporaryDirectory(prefix="stormwatch-expansion-") as scratch:
        asyncio.run(measure(args, Path(scratch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
