"""What is printed around the runs: the header and the closing Markdown table."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from cpu_usage import idle_check
from durability import Verdict
from run_figures import Report
from servers import rules_dir

TARGET_WEBHOOKS = 4000
TARGET_ALERTS = 20000
TARGET_P99_MS = 15.0


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
    if args.intake_only:
        service += ", engine off (STORMWATCH_RUN_ENGINE=false): alerts are logged, not expanded"
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
    """Run b): latency at the offered rate, timed from each request's slot in the schedule."""
    p50, p99 = b.latency_ms()
    offered = sum(t.offered for t in b.tallies)
    late = sum(t.late for t in b.tallies)
    return [
        (
            f"b) latency p50 / p99 at {args.rate:,.0f} webhooks/s offered (from the slot)",
            f"p99 <= {TARGET_P99_MS:g} ms",
            f"{p50:.1f} / {p99:.1f} ms ({_mark(p99 <= TARGET_P99_MS)})",
            "",
            "",
        ),
        (
            "b) sent > 2 ms after their slot (the wait is counted)",
            "",
            f"{late:,} of {offered:,}",
            "",
            "",
        ),
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
            f"{verdict.names} in /metrics = sent",
            "exact",
            f"{verdict.values} ({verdict.word})",
            "",
            "",
        ),
    ]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
