"""``stormwatch components [list|set|clear]``: what each component shows, and setting or
clearing its status by hand, through the API."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any
from urllib.parse import quote

from detector.api_client import ApiClient
from responders.statuspage.model import ComponentLevel


def add_commands(commands: Any, client: argparse.ArgumentParser) -> None:
    """The ``components`` command and its actions (``list`` when none is given)."""
    components = commands.add_parser(
        "components", parents=[client], help="show component statuses, or set or clear one"
    )
    actions = components.add_subparsers(dest="components_command", metavar="ACTION")
    actions.add_parser("list", parents=[client], help="each component's status (the default)")
    set_ = actions.add_parser("set", parents=[client], help="set a component's status by hand")
    set_.add_argument("name", help="component name, as in rules/components.yml")
    set_.add_argument("status", choices=[level.value for level in ComponentLevel])
    set_.add_argument("--reason", default="", help="why (shown to engineers, not customers)")
    set_.add_argument("--by", default=os.environ.get("USER", "cli"), help="default: $USER")
    clear = actions.add_parser(
        "clear", parents=[client], help="hand a component back to its incidents and windows"
    )
    clear.add_argument("name")


def run(args: argparse.Namespace, api: ApiClient) -> int:
    """Carry out the parsed ``components`` command."""
    action = args.components_command or "list"
    if action == "set":
        body = {"status": args.status, "by": args.by, "reason": args.reason}
        data = api.put(f"/api/v1/components/{_segment(args.name)}/status", body)
        text = f"{data['name']}: {data['status']} (set by {data['set_by']})"
    elif action == "clear":
        data = api.delete(f"/api/v1/components/{_segment(args.name)}/status")
        text = f"{data['name']}: " + ("cleared" if data["cleared"] else "nothing was set")
    else:
        data = api.get("/api/v1/components")
        text = _table(data["components"])
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


def _segment(name: str) -> str:
    return quote(name, safe="")


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no components"
    lines = [f"{'COMPONENT':<20}  {'STATUS':<22}  SET BY"]
    for row in rows:
        by = f"{row['set_by']}: {row['reason']}" if row["set_by"] else "-"
        lines.append(f"{row['name']:<20}  {row['status']:<22}  {by}")
    return "\n".join(lines)
