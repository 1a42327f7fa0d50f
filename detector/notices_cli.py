"""The notice commands of ``stormwatch``: ``update``, ``notice veto|edit|publish`` and
``postmortem``; each is one API call, printed as the text customers now read."""

from __future__ import annotations

import argparse
import os
from typing import Any

from detector.api_client import ApiClient

COMMANDS = ("update", "notice", "postmortem")


def add_commands(commands: Any, client: argparse.ArgumentParser) -> None:
    """Add the notice commands, with the client options in ``client``."""
    update = commands.add_parser(
        "update", parents=[client], help="post a public update (status, message, revised ETA)"
    )
    update.add_argument("id", type=int)
    update.add_argument(
        "--status",
        required=True,
        choices=["investigating", "identified", "monitoring", "resolved"],
    )
    update.add_argument("--eta", help="when it should be fixed: HH:MM (shop time) or ISO 8601")
    update.add_argument("message", help="your words for customers (may be empty: '')")

    notice = commands.add_parser(
        "notice", help="veto, edit or publish an incident's first notice"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", default=os.environ.get("USER", "cli"), help="who (default: $USER)")
    for action, text in (("veto", "stop it"), ("publish", "publish it now")):
        notice.add_parser(action, parents=[client, by], help=text).add_argument("id", type=int)
    edit = notice.add_parser("edit", parents=[client, by], help="replace its words")
    edit.add_argument("id", type=int)
    edit.add_argument("body", help="the new words")
    edit.add_argument("--name", help="the public incident's new name")

    postmortem = commands.add_parser(
        "postmortem", parents=[client], help="publish the post-incident notice"
    )
    postmortem.add_argument("id", type=int)
    postmortem.add_argument("--impact", required=True, help="who was affected, how long")
    postmortem.add_argument("--prevention", required=True, help="what changes so it won't recur")
    postmortem.add_argument("--customer-action", default="", help="what customers should do")
    postmortem.add_argument("--compensation", default="", help="what we offer")


def request(args: argparse.Namespace, api: ApiClient) -> Any:
    """Send the command's API call; the answer to print."""
    base = f"/api/v1/incidents/{args.id}"
    if args.command == "update":
        body: dict[str, Any] = {"status": args.status, "message": args.message}
        if args.eta:
            body["eta"] = args.eta
        return api.post(f"{base}/updates", body)
    if args.command == "notice":
        body = {"by": args.by}
        if args.action == "edit":
            body["body"] = args.body
            if args.name:
                body["name"] = args.name
        return api.post(f"{base}/notice/{args.action}", body)
    fields = ("impact", "prevention", "customer_action", "compensation")
    return api.post(f"{base}/postmortem", {name: getattr(args, name) for name in fields})


def render(data: dict[str, Any]) -> str:
    """What was published (or done), in a line or a paragraph."""
    if "body" in data:
        return f"incident {data['id']}: {data['status']}\n{data['body']}"
    return f"incident {data['id']}: notice {data['result']}"
