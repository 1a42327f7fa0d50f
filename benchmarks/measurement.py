"""Runs a), b) and c) against the bare baseline and the service, across worker processes."""

from __future__ import annotations

import argparse
import multiprocessing
import time
from contextlib import ExitStack
from multiprocessing.pool import Pool
from pathlib import Path

from cpu_usage import CpuMeter
from durability import Verdict, counters, verify, wait_for_engine
from load_client import WorkerSpec, run_worker
from run_figures import Report, Run
from servers import Target, start_bare, start_service


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
    """Runs a), b), c) against the service, the engine's backlog worked off after each (an
    intake replica has none to work off: its alerts wait for engines elsewhere)."""
    before = counters(service.url)
    reports: dict[str, Report] = {}
    for serial, run in enumerate(runs.values(), start=1):
        reports[run.key] = execute(pool, service, run, args, serial)
        if not args.intake_only:
            print("  " + wait_for_engine(service.url, args.drain_timeout), flush=True)
    verdict = verify(service.url, before, list(reports.values()), engine=not args.intake_only)
    print(f"[{service.name}] GET /metrics after the runs:\n{verdict.describe()}", flush=True)
    return reports, verdict


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
            service = start_service(stack, scratch, engine=not args.intake_only)
        reports, verdict = drive_service(pool, service, runs, args)
    return reports, bare, verdict
