"""Status page benchmark: does the public page survive the stampede, and what does it cost the
intake?

1. ``summary.json`` and ``/status`` at maximum rate over ``--connections`` keep-alive
   connections (closed loop, no conditional headers: every answer carries the whole document),
   against the service and against a bare aiohttp handler answering the same bytes
   (``bare_documents.py``): requests/s, p99 and ``service / bare`` (target: at least 0.5).
2. The ingest benchmark's run a) (5-alert webhooks at maximum rate) alone, then with the status
   page offered ``--page-rate`` requests/s beside it (open loop, half ``summary.json``, half
   ``/status``): webhooks/s both times and what the intake lost (target: at most 25 %).

The service is started here as the ingest benchmark starts it (embedded PostgreSQL in a fresh
temporary directory, the repository's rules, a free port on 127.0.0.1), with one component set
to ``partial_outage`` by hand so the page has something to say. All traffic stays on loopback.

    python benchmarks/statuspage.py --duration 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from multiprocessing.pool import Pool
from pathlib import Path

from durability import wait_for_engine
from ingest import parse_args as ingest_args
from measurement import execute, plan
from page_load import PageLoadSpec, PageTally, run_page_load
from servers import Target, free_port, start_service, started

PATHS = ("/api/v2/summary.json", "/status")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    p.add_argument("--connections", type=int, default=32, help="connections in the page runs")
    p.add_argument(
        "--page-rate", type=float, default=1000.0, help="page requests/s beside the intake"
    )
    return p


def _call(url: str, method: str, path: str, body: dict[str, str] | None = None) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, data, {"Content-Type": "application/json"})
        response = connection.getresponse()
        content = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {content[:200]!r}")
        return content
    finally:
        connection.close()


def seed(url: str) -> None:
    """Give the page an outage to show, and wait until the snapshot shows it."""
    body = {"status": "partial_outage", "by": "bench", "reason": "benchmark"}
    _call(url, "PUT", "/api/v1/components/payments/status", body)
    for _ in range(100):
        if b"partial_outage" in _call(url, "GET", PATHS[0]):
            return
        time.sleep(0.05)
    raise RuntimeError("the status page never showed the seeded outage")


def start_bare_documents(stack: ExitStack, scratch: Path, service: Target) -> Target:
    """The bare server, answering the bytes the service answers for each path."""
    specs = []
    for index, path in enumerate(PATHS):
        file = scratch / f"document-{index}"
        file.write_bytes(_call(service.url, "GET", path))
        kind = "application/json" if path.endswith(".json") else "text/html; charset=utf-8"
        specs.append(f"{path}={file}={kind}")
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("bare_documents.py")), str(port), *specs]
    env = dict(os.environ)
    return stack.enter_context(started("bare", argv, env, port, scratch / "bare.log"))


def page_run(
    pool: Pool, target: Target, paths: tuple[str, ...], args: argparse.Namespace
) -> PageTally:
    spec = PageLoadSpec(
        target.host, target.port, paths, args.connections, args.duration,
        start_at=time.monotonic() + 0.5,
    )  # fmt: skip
    tally: PageTally = pool.apply(run_page_load, (spec,))
    return tally


def pages(pool: Pool, service: Target, bare: Target, args: argparse.Namespace) -> list[float]:
    """Part 1; returns each path's ``service / bare``."""
    ratios = []
    for path in PATHS:
        figures = {t.name: page_run(pool, t, (path,), args) for t in (bare, service)}
        ratio = figures["service"].per_second / max(figures["bare"].per_second, 1e-9)
        ratios.append(ratio)
        for name, tally in figures.items():
            print(
                f"  {path:<22} {name:<8} {tally.per_second:>9,.0f} requests/s, "
                f"p99 {tally.p99_ms():6.1f} ms ({tally.other} non-200)",
                flush=True,
            )
        print(f"  {path:<22} service / bare = {ratio:.2f} (target >= 0.5)", flush=True)
    return ratios


def intake(pool: Pool, service: Target, args: argparse.Namespace) -> float:
    """Part 2: the intake alone, beside the page load, and alone again (the machine is shared:
    the mean of the two alone runs is the reference); returns the share the intake lost."""
    options = ingest_args(["--duration", str(args.duration), "--max-requests", "200000"])
    run = plan(options)["a"]
    alone = [execute(pool, service, run, options, serial=1).webhooks_per_s]
    print("  " + wait_for_engine(service.url, options.drain_timeout), flush=True)
    spec = PageLoadSpec(
        service.host, service.port, PATHS, args.connections, args.duration + 1.0,
        rate=args.page_rate, start_at=time.monotonic() + 0.5,
    )  # fmt: skip
    beside = pool.apply_async(run_page_load, (spec,))
    print(f"  ... with the status page offered {args.page_rate:,.0f} requests/s beside it:")
    loaded = execute(pool, service, run, options, serial=2).webhooks_per_s
    page = beside.get(args.duration + 60)
    print("  " + wait_for_engine(service.url, options.drain_timeout), flush=True)
    print("  ... alone again:")
    alone.append(execute(pool, service, run, options, serial=3).webhooks_per_s)
    print("  " + wait_for_engine(service.url, options.drain_timeout), flush=True)
    reference = sum(alone) / len(alone)
    lost = 1 - loaded / max(reference, 1e-9)
    print(
        f"  status page beside it: {page.per_second:,.0f} requests/s answered 200, "
        f"p99 {page.p99_ms():.1f} ms ({page.other} non-200)\n"
        f"  intake: {reference:,.0f} webhooks/s alone (mean of {alone[0]:,.0f} and "
        f"{alone[1]:,.0f}), {loaded:,.0f} beside the page load: lost {lost:.0%} "
        "(target <= 25 %)",
        flush=True,
    )
    return lost


def main(argv: list[str] | None = None) -> int:
    """Run both parts; exit 1 if a target was missed."""
    args = _parser().parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="stormwatch-statuspage-bench-"))
    try:
        with ExitStack() as stack:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(2))
            service = start_service(stack, scratch)
            seed(service.url)
            bare = start_bare_documents(stack, scratch, service)
            print(f"1. public documents, closed loop, {args.connections} connections", flush=True)
            ratios = pages(pool, service, bare, args)
            print("2. intake with and without the status page beside it", flush=True)
            lost = intake(pool, service, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if min(ratios) >= 0.5 and lost <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
