"""``stormwatch demo``: start the world, tell one fault's story live with a progress display,
print the report and the measured times, and exit 0 (``--keep-running`` leaves it all up)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from detector.demo.scenery import STORIES
from detector.demo.shop_prometheus import HOW_TO_ADD, ShopPrometheus
from detector.demo.story import Moments, Story, StoryStalled
from detector.demo.world import DemoWorld, World
from detector.demo_shop.faults import Fault
from detector.service.logs import configure_logging
from detector.service.settings import LogFormat

LABELS = {
    "detect": "detect (fault → incident)",
    "page": "page (incident → page)",
    "first_notice": "first notice (incident → status page)",
    "acknowledge": "acknowledge (incident → ack)",
    "resolve": "resolve (fix → resolved)",
    "incident_open": "incident open in all",
}


def add_to(commands: Any) -> None:
    """Add ``demo`` to the command line."""
    demo = commands.add_parser(
        "demo", help="the whole story on this machine: fault, page, notice, ack, fix, report"
    )
    demo.add_argument(
        "--fault",
        default=Fault.PAYMENT_DOWN.value,
        choices=[fault.value for fault in STORIES],
        help="what breaks (default payment-down)",
    )
    demo.add_argument(
        "--keep-running", action="store_true", help="leave everything up afterwards (Ctrl-C ends)"
    )
    demo.add_argument(
        "--output", type=Path, help="write report.md, report.html, status.html, summary.json here"
    )


class RichNarrator:
    """Each step a line with a spinner while it runs, a tick and what happened once done."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def begin(self, step: str) -> None:
        self._tasks[step] = self._progress.add_task(step, total=1)

    def done(self, step: str, detail: str = "") -> None:
        text = f"[green]✔[/green] {step}" + (f" — {detail}" if detail else "")
        self._progress.update(self._tasks[step], completed=1, description=text)

    def say(self, text: str) -> None:
        self._progress.console.print(f"  {text}", highlight=False, markup=False, soft_wrap=True)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the whole story was told."""
    configure_logging(LogFormat.CONSOLE, "error")
    return asyncio.run(_demo(Fault(args.fault), args.keep_running, args.output, Console()))


async def _demo(fault: Fault, keep_running: bool, output: Path | None, console: Console) -> int:
    console.rule(f"Stormwatch demo: {fault.value}")
    console.print(STORIES[fault], highlight=False)
    if not ShopPrometheus.available():
        console.print(f"No Prometheus on this machine, so no impact estimate: {HOW_TO_ADD}")
    async with DemoWorld() as world:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            try:
                moments = await Story(world, fault, RichNarrator(progress)).run()
            except StoryStalled as stalled:
                console.print(f"[red]The story stalled:[/red] {stalled}")
                return 1
        console.rule("Post-incident report")
        console.print(moments.report_markdown, markup=False, highlight=False, soft_wrap=True)
        console.print(summary_table(moments))
        if output is not None:
            write_output(output, moments)
            console.print(f"Report, status page and summary written to {output}")
        if keep_running:
            await _stay_up(world, console)
    return 0


def summary_table(moments: Moments) -> Table:
    """The measured times."""
    table = Table(title="Measured times")
    table.add_column("time to")
    table.add_column("seconds", justify="right")
    for key, value in moments.measured().items():
        table.add_row(LABELS[key], "-" if value is None else f"{value:.1f}")
    table.add_row("impact", moments.impact or "-")
    table.add_row("mails to subscribers", str(moments.mails))
    return table


def write_output(directory: Path, moments: Moments) -> None:
    """Keep what the demo produced: the report (both forms), the status page as customers saw
    it last, and the measured times as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.md").write_text(moments.report_markdown)
    (directory / "report.html").write_text(moments.report_html)
    (directory / "status.html").write_text(moments.status_page_html)
    summary = {
        "incident_id": moments.incident_id,
        "measured_seconds": moments.measured(),
        "status_page_url": moments.status_page_url,
        "impact": moments.impact,
        "mails": moments.mails,
    }
    (directory / "summary.json").write_text(json.dumps(summary, indent=2))


async def _stay_up(world: World, console: Console) -> None:
    console.print(
        f"Still running (Ctrl-C to stop): Stormwatch {world.service_url} "
        f"(status page {world.service_url}/status), shop {world.shop_url}"
        + (f", Prometheus {world.prometheus.url}" if world.prometheus else ""),
        highlight=False,
    )
    await asyncio.Event().wait()
