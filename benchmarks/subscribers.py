"""Notices to many subscribers: how long queueing one notice to 100,000 subscribers takes, and
how fast the subscriber stage mails through a local SMTP server, each beside a reference
measured in the same run.

    python benchmarks/subscribers.py                 # 100,000 subscribers, 10 s of sending
    python benchmarks/subscribers.py --subscribers 20000 --send-seconds 5

It starts an embedded PostgreSQL (pgserver) in a temporary directory and an aiosmtpd server
that accepts and discards mail (``aiosmtpd.handlers.Sink``) in its own process on 127.0.0.1.

- queue: an alert opens an incident whose rule publishes at once; engine cycles run until every
  subscriber has a queued message (batches of ``notice_fanout.BATCH`` on durable timers).
  Reference: the same rows in one ``INSERT ... SELECT`` (the giant transaction the fan-out
  avoids).
- send: the subscriber delivery stage runs for ``--send-seconds`` against the SMTP server.
  Reference: a bare aiosmtplib loop sending one prepared mail with the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg
import pgserver

from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer
from detector.engine.stage import CycleContext
from detector.engine.subscriber_delivery import SubscriberDeliveryStage, SubscriberLinks
from detector.intake.alertmanager import parse_payload, to_signals
from detector.ruleset.live import LiveRules
from detector.service.metrics import Metrics
from detector.store import migrate, signals
from detector.store.connection import init_connection
from detector.store.subscribers import SubscriberKind
from responders.channels.email import EmailChannel, SmtpSecurity, SmtpServer

RULES = """components:
  - name: checkout
    display_name: Checkout
rules:
  - name: pool
    match: ['alertname="PgBouncerPoolSaturated"']
    severity: critical
    title: Pool exhausted
    component: checkout
    notice: {publish: immediately, impact: Some orders fail.}
"""
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CONCURRENCY = 200


class Clock:
    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def add_subscribers(pool: asyncpg.Pool, count: int) -> None:
    """Benchmark setup: ``count`` confirmed email subscribers in one statement."""
    await pool.execute(
        """INSERT INTO subscribers (kind, address, token, created_at, confirmed_at)
           SELECT 'email', 'c' || n || '@shop.example', 't' || n, $2, $2
           FROM generate_series(1, $1) AS n""",
        count,
        START,
    )


def alert_payload() -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "PgBouncerPoolSaturated"},
        "annotations": {},
        "startsAt": START.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "0123456789abcdef",
    }
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "x",
        "groupKey": "{}",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


async def queue_notice(pool: asyncpg.Pool, rules_dir: Path, count: int) -> float:
    """Seconds from the alert's engine cycle to every subscriber's message queued."""
    clock = Clock()
    live = LiveRules(rules_dir, lambda _: {}, clock.now)
    engine = Engine(pool, lambda: live.routes, Deliverer(lambda page: None, None), clock, Metrics())  # type: ignore[arg-type]
    async with pool.acquire() as connection:
        await signals.insert_signals(connection, to_signals(parse_payload(alert_payload()), START))
    started = time.perf_counter()
    while await pool.fetchval("SELECT count(*) FROM subscriber_outbox") < count:
        await engine.run_once()
    return time.perf_counter() - started


async def reference_queue(pool: asyncpg.Pool) -> float:
    """The same rows in one giant statement."""
    started = time.perf_counter()
    await pool.execute(
        """INSERT INTO subscriber_outbox (subscriber_id, kind, payload, idempotency_key,
             next_attempt_at, created_at)
           SELECT s.id, 'subscriber_notice', o.payload, 'ref:' || s.id, $1, $1
           FROM subscribers s JOIN LATERAL (SELECT payload FROM subscriber_outbox LIMIT 1) o
             ON true""",
        START,
    )
    elapsed = time.perf_counter() - started
    await pool.execute("DELETE FROM subscriber_outbox WHERE idempotency_key LIKE 'ref:%'")
    return elapsed


async def send_for(pool: asyncpg.Pool, port: int, seconds: float) -> float:
    """Mails per second the subscriber stage delivers."""
    server = SmtpServer("127.0.0.1", port, "status@shop.example", SmtpSecurity.NONE)
    stage = SubscriberDeliveryStage(
        {SubscriberKind.EMAIL: EmailChannel("email", server)},
        SubscriberLinks("https://status.shop.example"),
        limit=CONCURRENCY,
    )
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        context = CycleContext(pool, None, "bench", datetime.now(UTC), 1)  # type: ignore[arg-type]
        report = await stage.run(context)
        sent += sum(1 for _, outcome in report.outcomes if outcome == "delivered")
    return sent / (time.perf_counter() - started)


async def reference_send(port: int, seconds: float) -> float:
    """Mails per second from a bare aiosmtplib loop with the same concurrency."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "status@shop.example", "c1@shop.example", "x"
    mail.set_content("We are looking into a problem with Checkout.\n" * 5)
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await asyncio.gather(
            *(
                aiosmtplib.send(mail, hostname="127.0.0.1", port=port, start_tls=False)
                for _ in range(CONCURRENCY)
            )
        )
        sent += CONCURRENCY
    return sent / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="stormwatch-subscribers-"))
    rules_dir = scratch / "rules"
    rules_dir.mkdir()
    (rules_dir / "shop.yml").write_text(RULES)
    server = pgserver.get_server(scratch / "pg", cleanup_mode="delete")
    port = free_port()
    smtp = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"),
        *("-c", "aiosmtpd.handlers.Sink"),
    )
    try:
        pool = await asyncpg.create_pool(
            server.get_uri(), init=init_connection, min_size=2, max_size=8
        )
        async with pool.acquire() as connection:
            await migrate.migrate(connection)
        await add_subscribers(pool, args.subscribers)
        queued = await queue_notice(pool, rules_dir, args.subscribers)
        reference = await reference_queue(pool)
        print(
            f"queue a notice to {args.subscribers:,} subscribers: {queued:.2f} s"
            f" (one INSERT ... SELECT of the same rows: {reference:.2f} s)"
        )
        await asyncio.sleep(1.0)  # the SMTP server's process is listening by now
        rate = await send_for(pool, port, args.send_seconds)
        bare = await reference_send(port, args.send_seconds)
        print(
            f"send to local SMTP: {rate:,.0f} mails/s"
            f" (bare aiosmtplib loop, {CONCURRENCY} concurrent: {bare:,.0f} mails/s,"
            f" ratio {rate / bare:.2f})"
        )
        await pool.close()
    finally:
        smtp.terminate()
        await smtp.wait()
        server.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--send-seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
