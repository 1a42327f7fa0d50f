"""``stormwatch report ID`` (the post-incident report, Markdown or ``--html``) and ``stormwatch
stats --since 30d`` (incidents, MTTA, MTTR and time to first notice per component and rule)."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from detector.api_client import ApiClient
from detector.report.facts import span

COMMANDS = ("report", "stats")


def add_commands(commands: Any, client: argparse.ArgumentParser) -> None:
    """Add ``report`` and ``stats``, with the client options in ``client``."""
    report = commands.add_parser(
        "report", parents=[client], help="the post-incident report of one incident"
    )
    report.add_argument("id", type=int)
    report.add_argument("--html", action="store_true", help="HTML with the chart (else Markdown)")
    stats = commands.add_parser(
        "stats", parents=[client], help="incidents, MTTA, MTTR and time to first notice"
    )
    stats.add_argument("--since", default="30d", help="incidents opened this long ago (30d)")


def run(args: argparse.Namespace, api: ApiClient) -> int:
    """Fetch the report or the statistics and print them."""
    if args.command == "report":
        form = "html" if args.html else "markdown"
        print(api.text(f"/api/v1/incidents/{args.id}/report", {"format": form}), end="")
        return 0
    data = api.get("/api/v1/stats", {"since": args.since})
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        Console(width=120).print(stats_table(data))
    return 0


def stats_table(data: dict[str, Any]) -> Table:
    """One row per component and rule."""
    table = Table(title=f"Incidents opened since {data['since'][:19]}")
    for column in ("component", "rule", "incidents", "MTTA", "MTTR", "first notice"):
        table.add_column(column, justify="left" if column in ("component", "rule") else "right")
    for row in data["rows"]:
        table.add_row(
            row["component"] or "-",
            row["rule"],
            str(row["incidents"]),
            _mean(row["mtta_s"]),
            _mean(row["mttr_s"]),
            _mean(row["first_notice_s"]),
        )
    return table


def _mean(seconds: float | None) -> str:
    return span(None if seconds is None else timedelta(seconds=seconds))
