"""Contention benchmark: how much a parse-only aiohttp handler slows when the other core is busy.

The service never has the machine to itself: PostgreSQL and the engine work beside the intake
on the same 2 cores. This drives ingest run a) (5-alert webhooks, closed loop) at
``bare_server.py`` in rounds, once alone and once beside one CPU-bound neighbour process, and
prints webhooks/s and the server's CPU per webhook for both, so the share of the service/bare
gap that comes from sharing the machine, not from the intake's own work, can be read off.

    python benchmarks/contention.py --rounds 3 --duration 6
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from multiprocessing.pool import Pool
from pathlib import Path

import ingest
from measurement import execute, plan
from run_figures import Report
from servers import Target, start_bare

_NEIGHBOUR = [sys.executable, "-c", "while True: pass"]
_SETTLE_S = 1.0  # let the neighbour get its core before the run starts


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        choices=range(1, 11),
        metavar="1-10",
        help="pairs of runs (alone, then beside the busy process)",
    )
    p.add_argument("--duration", type=float, default=6.0, help="seconds per run (0-60)")
    return p


def _run(
    pool: Pool, target: Target, args: argparse.Namespace, neighbour: bool, serial: int
) -> Report:
    """One run a) against the bare server, with the neighbour process running if asked."""
    process = subprocess.Popen(_NEIGHBOUR) if neighbour else None  # noqa: S603 - our interpreter
    try:
        if process is not None:
            time.sleep(_SETTLE_S)
        return execute(pool, target, plan(args)["a"], args, serial)
    finally:
        if process is not None:
            process.kill()
            process.wait()


def _row(label: str, reports: list[Report]) -> str:
    rates = ", ".join(f"{r.webhooks_per_s:,.0f}" for r in reports)
    cpu = ", ".join(f"{r.server_us_per_webhook or 0:,.0f}" for r in reports)
    return f"| {label} | {rates} | {cpu} |"


def main(argv: list[str] | None = None) -> int:
    """Alternate the two conditions round by round, then print both rows of figures."""
    own = _parser().parse_args(argv)
    if not 0 < own.duration <= 60:
        _parser().error("duration must be between 0 and 60 seconds")
    args = ingest.parse_args(["--duration", str(own.duration)])
    results: dict[bool, list[Report]] = {False: [], True: []}
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stormwatch-")))
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(1))
        target = start_bare(stack, scratch)
        for round_number in range(own.rounds):
            for neighbour in (False, True):
                print(f"round {round_number + 1}, {'beside a busy core' if neighbour else 'alone'}")
                report = _run(pool, target, args, neighbour, 2 * round_number + neighbour)
                results[neighbour].append(report)
    print("\n| bare handler, run a) | webhooks/s | server CPU µs per webhook |")
    print("| --- | --- | --- |")
    print(_row("alone", results[False]))
    print(_row("beside one CPU-bound process", results[True]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
