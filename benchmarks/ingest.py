"""Ingest benchmark: how many Alertmanager webhooks Stormwatch stores durably per second.

Every 2xx the service sends means the alerts are committed, so the figure that matters is 2xx
answers per second and the latency to them. Runs, each ``--duration`` seconds and at most
``--max-requests`` webhooks (a hard stop follows ``--grace`` seconds after the deadline):

a) 5-alert webhooks at maximum rate over ``--concurrency`` keep-alive connections (closed loop);
b) 5-alert webhooks offered at a fixed ``--rate`` (open loop), latency from each request's slot
   in the schedule to its 2xx, so time spent waiting for a free connection counts;
c) ``--large-alerts``-alert groups (a big incident: one notification carries the whole group).

``--replay-share`` of the requests repeat an earlier payload byte for byte, as Alertmanager does
on retries, repeat intervals and from HA peers. Runs a) and c) also go to a parse-only aiohttp
server (``bare_server.py``) to show what validation and the commit cost on top of plain
aiohttp. Afterwards ``GET /metrics`` must show exactly one ``accepted`` alert per distinct alert
answered 2xx and one ``duplicate`` per replayed alert; a mismatch exits 1.

Without ``--url`` the service is started here (``python -m detector serve``, i.e. ``stormwatch
serve``, with an embedded PostgreSQL in a fresh temporary directory, a free port, a random
webhook token, the repository's rules or STORMWATCH_RULES_DIR) and stopped with SIGTERM. Between
runs the engine's backlog is worked off so that one run's leftovers do not slow the next.
``--intake-only`` starts it without its engine, as an intake replica whose engines run on other
machines: the alerts stay in the intake log, and ``/metrics`` must then show one logged alert
per alert answered 2xx. All traffic stays on the loopback interface.

    python benchmarks/ingest.py --duration 8
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from measurement import measure
from servers import require_loopback
from summary import header, summary


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
    p.add_argument(
        "--intake-only",
        action="store_true",
        help="start the service without its engine (STORMWATCH_RUN_ENGINE=false), as an intake "
        "replica whose engines run elsewhere; the check then counts alerts logged, since "
        "nothing deduplicates them",
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
        if args.intake_only:
            p.error("--intake-only starts its own service: it cannot be used with --url")
    now = datetime.now(UTC)
    args.times = tuple(  # unique per invocation, so reruns against one database stay distinct
        f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
        for t in (now - timedelta(minutes=10), now - timedelta(minutes=1))
    )
    return args


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
