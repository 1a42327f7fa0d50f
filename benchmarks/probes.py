"""Journey benchmark: what running synthetic journeys costs, and what it takes from intake.

200 journeys (``--journeys``) of 5 steps each at a 10 s interval walk the demo shop
(``python -m detector demo-shop``, started here on a free port) through product, cart,
checkout, payment and confirmation. Figures, each beside its reference from the same run:

- CPU per journey run: the engine process (where journeys run) over ``--window`` seconds with
  journeys on, against the same process idle with them off;
- schedule drift p99: how late runs start after their slot (target at most 1 s);
- the ingest benchmark's run a) (5-alert webhooks at maximum rate) ``--rounds`` times each
  without and with the journeys running, in the order off-on, on-off, off-on, … on one service
  (target: intake loses at most 15 %).

The service runs on an embedded PostgreSQL in a fresh temporary directory; all traffic
stays on the loopback interface.

    python benchmarks/probes.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from cpu_usage import idle_check, process_cpu_seconds
from ingest import parse_args as ingest_args
from measurement import execute, plan
from prometheus_client.parser import text_string_to_metric_families
from run_figures import Report
from servers import REPO, Target, free_port, get, start_service

STEPS = """\
    steps:
      - name: product
        url: "{{{{ vars.base }}}}/api/products/umbrella"
        assert: [{{status: 200}}, {{json: $.available, equals: true}}]
      - name: cart
        method: POST
        url: "{{{{ vars.base }}}}/api/cart/items"
        json: {{sku: umbrella, quantity: 1}}
        assert: [{{status: 200}}]
      - name: checkout
        method: POST
        url: "{{{{ vars.base }}}}/api/checkout"
        json: {{email: "synthetic+{{{{ run.id }}}}@shop.invalid"}}
        assert: [{{status: 201}}]
        extract: {{order_id: {{json: $.order_id}}}}
      - name: pay
        method: POST
        url: "{{{{ vars.base }}}}/api/orders/{{{{ steps.checkout.order_id }}}}/payment"
        json: {{card_number: "4242424242424242"}}
        assert: [{{status: 200}}, {{json: $.status, equals: confirmed}}]
      - name: confirmation
        url: "{{{{ vars.base }}}}/api/orders/{{{{ steps.checkout.order_id }}}}"
        assert: [{{status: 200}}, {{json: $.synthetic, equals: true}}]
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument("--journeys", type=int, default=200, help="journeys of 5 steps each")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between runs")
    p.add_argument("--window", type=float, default=40.0, help="seconds of journeys measured")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of ingest run a)")
    p.add_argument("--rounds", type=int, default=2, help="ingest runs with and without, each")
    return p


def write_rules(directory: Path, base: str, journeys: int, interval: float, on: bool) -> None:
    """The repository's rules plus ``journeys`` copies of a 5-step checkout journey, enabled
    or not (switched by a rules reload, so both halves run on one service and database)."""
    directory.mkdir(exist_ok=True)
    for path in (REPO / "rules").glob("*.yml"):
        if path.name != "journeys.yml":
            shutil.copy(path, directory / path.name)
    blocks = [
        f"  - name: bench-{n:03d}\n    enabled: {str(on).lower()}\n"
        f"    interval: {interval:g}s\n    timeout: {interval:g}s\n"
        f"    step_timeout: 5s\n    labels: {{severity: page, cluster: bench}}\n"
        f'    vars: {{base: "{base}"}}\n' + STEPS.format()
        for n in range(journeys)
    ]
    (directory / "journeys.yml").write_text("journeys:\n" + "".join(blocks))


def switch(service: Target, directory: Path, args: argparse.Namespace, on: bool) -> None:
    """Turn the journeys on or off in the running service."""
    write_rules(directory, args.shop, args.journeys, args.interval, on)
    url = f"{service.url}/api/v1/rules/reload"
    request = urllib.request.Request(url, method="POST")  # noqa: S310 - loopback, http
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        if answer.status != 200:
            raise RuntimeError(f"rules reload answered {answer.status}")


def start_shop(stack: ExitStack, scratch: Path) -> str:
    """The demo shop on a free port, with a pool large enough not to be the bottleneck."""
    port = free_port()
    argv = [sys.executable, "-m", "detector", "demo-shop", "--port", str(port)]
    argv += ["--pool-size", "200"]
    log = (scratch / "shop.log").open("wb")
    stack.callback(log.close)
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)  # noqa: S603 - our own interpreter
    stack.callback(process.wait, 30)
    stack.callback(process.terminate)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if get(url, "/healthz", timeout=1.0)[0] == 200:
                return url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the demo shop did not start")


def engine_pid(service: Target) -> int:
    """The engine's child process of ``stormwatch serve``."""
    children = Path(f"/proc/{service.pid}/task/{service.pid}/children").read_text().split()
    return int(children[0])


def probe_figures(url: str) -> dict[str, float]:
    """Runs so far, and the start-delay histogram's cumulative buckets."""
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(get(url, "/metrics")[1]):
        for sample in family.samples:
            if sample.name == "stormwatch_probe_runs_total":
                key = f"runs_{sample.labels['outcome']}"
                figures[key] = figures.get(key, 0.0) + sample.value
            elif sample.name == "stormwatch_probe_start_delay_seconds_bucket":
                figures[f"le_{sample.labels['le']}"] = sample.value
    return figures


def drift_p99(before: dict[str, float], after: dict[str, float]) -> str:
    """The bucket bound below which 99 % of the window's runs started."""
    bounds = sorted(
        (float(key[3:]), after[key] - before.get(key, 0.0)) for key in after if key[:3] == "le_"
    )
    total = bounds[-1][1] if bounds else 0.0
    for bound, count in bounds:
        if total and count >= 0.99 * total:
            return f"<= {bound:g} s" if bound != float("inf") else "> 30 s"
    return "no runs"


def measure_window(
    service: Target, seconds: float
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Engine CPU seconds over ``seconds``, and the probe figures before and after them."""
    pid = engine_pid(service)
    before, cpu = probe_figures(service.url), process_cpu_seconds(pid)
    time.sleep(seconds)
    used = process_cpu_seconds(pid) - cpu
    return used, before, probe_figures(service.url)


def runs_of(before: dict[str, float], after: dict[str, float], outcome: str = "") -> float:
    """Runs (of ``outcome``, else all) between two readings."""
    keys = [f"runs_{outcome}"] if outcome else ["runs_success", "runs_failure"]
    return sum(after.get(key, 0.0) - before.get(key, 0.0) for key in keys)


def main(argv: list[str] | None = None) -> int:
    """One service: ingest run a) once to warm up, then ``--rounds`` times each with journeys
    off and on, in the order off-on, on-off, off-on, …, and the figures beside their
    references."""
    args = _parser().parse_args(argv)
    ingest = ingest_args(["--duration", str(args.duration)])
    print(idle_check(), flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="stormwatch-probes-bench-"))
    rules = scratch / "rules"
    run_a = plan(ingest)["a"]
    try:
        with ExitStack() as stack:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(1))
            args.shop = start_shop(stack, scratch)
            write_rules(rules, args.shop, args.journeys, args.interval, on=False)
            service = start_service(stack, scratch, extra={"STORMWATCH_RULES_DIR": str(rules)})
            execute(pool, service, run_a, ingest, 5)  # warm-up: a fresh database is slower
            idle_cpu, _, _ = measure_window(service, 10.0)
            without = [execute(pool, service, run_a, ingest, 1)]
            switch(service, rules, args, on=True)
            time.sleep(args.interval + 2)  # every journey past its first slot
            cpu, before, quiet = measure_window(service, args.window)
            with_journeys = [execute(pool, service, run_a, ingest, 2)]
            busy = probe_figures(service.url)
            # Then on-off, off-on, …: each round starts as the last one ended, so the database
            # growing run by run slows both settings alike instead of always the second.
            on = True
            for serial in range(3, 2 * args.rounds + 1):
                if serial % 2 == 0:
                    switch(service, rules, args, on=not on)
                    on = not on
                    time.sleep(2)
                report = execute(pool, service, run_a, ingest, serial)
                (with_journeys if on else without).append(report)
        lines = figures(args, idle_cpu, cpu, (before, quiet, busy), without, with_journeys)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(lines))
    return 0


def figures(
    args: argparse.Namespace,
    idle_cpu: float,
    cpu: float,
    readings: tuple[dict[str, float], dict[str, float], dict[str, float]],
    without: list[Report],
    with_journeys: list[Report],
) -> list[str]:
    """The summary lines, each figure beside its reference."""
    before, quiet, busy = readings
    ran = runs_of(before, quiet)
    per_run = (cpu - idle_cpu / 10.0 * args.window) / max(ran, 1.0)
    off = sum(r.webhooks_per_s for r in without) / len(without)
    on = sum(r.webhooks_per_s for r in with_journeys) / len(with_journeys)
    each = ", ".join(
        f"{a.webhooks_per_s:,.0f}/{b.webhooks_per_s:,.0f}"
        for a, b in zip(without, with_journeys, strict=True)
    )
    return [
        f"journey runs in {args.window:g} s: {ran:,.0f} (schedule: "
        f"{args.journeys * args.window / args.interval:,.0f}; failed: "
        f"{runs_of(before, quiet, 'failure'):,.0f}); during ingest run a): "
        f"{runs_of(quiet, busy):,.0f}",
        f"engine CPU per journey run: {per_run * 1000:.2f} ms (engine CPU "
        f"{cpu / args.window:.1%} of a core with journeys, {idle_cpu / 10.0:.1%} idle without)",
        f"schedule drift p99: {drift_p99(before, quiet)} while only journeys run, "
        f"{drift_p99(quiet, busy)} during ingest run a) (target <= 1 s)",
        f"ingest run a), journeys off/on per round: {each} webhooks/s; mean {off:,.0f} "
        f"off, {on:,.0f} on: {1 - on / off:.1%} lost (target <= 15 %)",
    ]


if __name__ == "__main__":
    sys.exit(main())
