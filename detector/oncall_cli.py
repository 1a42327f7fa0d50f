"""The ``stormwatch oncall`` command: who is on call and next, the signed calendar feeds, and
overrides made from a terminal at 3 a.m.

``oncall [SCHEDULE]`` lists; ``oncall override SCHEDULE --person P --until 08:00`` covers a
shift; ``oncall overrides SCHEDULE`` and ``oncall override-delete SCHEDULE ID`` list and delete.
One parser takes all four (argparse cannot mix an optional SCHEDULE with sub-commands), so the
words are checked here. ``HH:MM`` is the next such time in the schedule's own time zone.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from detector.api_client import ApiClient
from detector.cli_output import show

COMMANDS = ("oncall",)
USAGE = """stormwatch oncall [SCHEDULE] [--calendar]
       stormwatch oncall override SCHEDULE --person ID --until TIME [--from TIME] [--as NAME]
       stormwatch oncall overrides SCHEDULE
       stormwatch oncall override-delete SCHEDULE ID [--as NAME]"""
_WORDS = {"override": 1, "overrides": 1, "override-delete": 2}
"""Each action and how many words follow it."""
USAGE_ERROR = 2


def add_commands(commands: Any, client: argparse.ArgumentParser) -> None:
    """Add ``oncall``, with the client options in ``client``."""
    oncall = commands.add_parser(
        "oncall",
        parents=[client],
        usage=USAGE,
        help="who is on call now and next; overrides; calendar feeds",
        description="TIME is HH:MM (the next such time in the schedule's time zone) or ISO 8601.",
    )
    oncall.add_argument("words", nargs="*", metavar="ARGS", help="see usage")
    oncall.add_argument(
        "--calendar", action="store_true", help="print the signed iCalendar feed URLs"
    )
    oncall.add_argument("--person", help="who covers (a person id from the on-call files)")
    oncall.add_argument("--until", help="when the override ends (TIME)")
    oncall.add_argument("--from", dest="start", help="when it starts (TIME; default: now)")
    oncall.add_argument(
        "--as",
        dest="actor",
        default=os.environ.get("USER", "cli"),
        help="who makes or deletes it (default: $USER)",
    )


def run(args: argparse.Namespace, api: ApiClient) -> int:
    """Run ``oncall`` as its words say; 2 for words that make no command."""
    words: list[str] = args.words
    action = words[0] if words and words[0] in _WORDS else None
    if action is None:
        if len(words) > 1:
            return _usage("give at most one SCHEDULE")
        render = render_calendars if args.calendar else render_oncall
        return show(args, _listing(api, words[0] if words else None), render)
    if len(words) != 1 + _WORDS[action]:
        return _usage(f"{action} takes {' '.join(_action_usage(action))}")
    return _on_schedule(args, api, action, words[1:])


def _on_schedule(args: argparse.Namespace, api: ApiClient, action: str, words: list[str]) -> int:
    """``override``, ``overrides`` or ``override-delete`` on the schedule ``words[0]``."""
    base = f"/api/v1/schedules/{quote(words[0], safe='')}"
    if action == "overrides":
        return show(args, api.get(f"{base}/overrides"), render_overrides)
    if action == "override":
        return _override(args, api, base)
    if not words[1].isdigit():
        return _usage("ID must be a number")
    answer = api.delete(f"{base}/overrides/{words[1]}", {"X-Stormwatch-Actor": args.actor})
    return show(args, answer, lambda d: f"override {d['id']} on {d['schedule']} deleted")


def _listing(api: ApiClient, schedule: str | None) -> Any:
    return api.get("/api/v1/oncall", {"schedule": schedule} if schedule else None)


def _override(args: argparse.Namespace, api: ApiClient, base: str) -> int:
    if not args.person or not args.until:
        return _usage("override needs --person and --until")
    zone = ZoneInfo(api.get(base)["time_zone"])
    now = datetime.now(UTC)
    try:
        start = None if args.start is None else moment(args.start, zone, now)
    except ValueError as err:
        return _usage(f"--from: {err}")
    try:
        end = moment(args.until, zone, start or now)
    except ValueError as err:
        return _usage(f"--until: {err}")
    body = {"person": args.person, "end": end.isoformat(), "created_by": args.actor}
    if start is not None:
        body["start"] = start.isoformat()
    return show(args, api.post(f"{base}/overrides", body), render_override)


def moment(text: str, zone: ZoneInfo, after: datetime) -> datetime:
    """``HH:MM``: the next such local time in ``zone`` after ``after``; otherwise ISO 8601 (a
    time without an offset is read in ``zone``). ValueError when it is neither."""
    text = text.strip()
    try:
        if len(text) == 5 and text[2] == ":":
            return _next_local(time.fromisoformat(text), zone, after)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither HH:MM nor an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _next_local(clock: time, zone: ZoneInfo, after: datetime) -> datetime:
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), clock, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), clock, tzinfo=zone)
    return candidate


def _action_usage(action: str) -> list[str]:
    return ["SCHEDULE", "ID"][: _WORDS[action]]


def _usage(message: str) -> int:
    print(f"usage: {USAGE}\nstormwatch oncall: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def render_oncall(data: dict[str, Any]) -> str:
    """One line per schedule: who is on call, until when, then the next handoffs (local time)."""
    rows = data["schedules"]
    if not rows:
        return "no schedules"
    lines = [f"{'SCHEDULE':<16}  {'ON CALL':<24}  {'UNTIL':<22}  NEXT"]
    for row in rows:
        zone = ZoneInfo(row["time_zone"])
        who = _person(row["on_call"]) if row["on_call"] else "nobody"
        until = _local(row["until"], zone) if row["until"] else "-"
        later = ", ".join(
            f"{_person(shift['person'])} {_local(shift['start'], zone)}" for shift in row["next"]
        )
        lines.append(f"{row['name']:<16}  {who:<24}  {until:<22}  {later or '-'}")
    return "\n".join(lines)


def render_calendars(data: dict[str, Any]) -> str:
    """The signed feed URLs, to paste into a calendar app's "subscribe" box."""
    lines = [f"schedule {row['name']}: {row['calendar']}" for row in data["schedules"]]
    lines += [f"person {row['id']}: {row['calendar']}" for row in data["people"]]
    return "\n".join(lines) or "no schedules"


def render_overrides(data: dict[str, Any]) -> str:
    """The current and future stored overrides of one schedule."""
    rows = data["overrides"]
    if not rows:
        return f"no current or future overrides on {data['schedule']}"
    lines = [f"{'ID':>6}  {'PERSON':<24}  {'FROM':<25}  {'UNTIL':<25}  BY"]
    for row in rows:
        lines.append(
            f"{row['id']:>6}  {_person(row['person']):<24}  {row['start']:<25}  "
            f"{row['end']:<25}  {row['created_by']}"
        )
    return "\n".join(lines)


def render_override(data: dict[str, Any]) -> str:
    """The override just made."""
    return (
        f"override {data['id']} on {data['schedule']}: {_person(data['person'])} from "
        f"{data['start']} until {data['end']} (by {data['created_by']})"
    )


def _person(person: dict[str, str]) -> str:
    name, ident = person["name"], person["id"]
    return name if name == ident else f"{name} ({ident})"


def _local(text: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(text).astimezone(zone).strftime("%a %d %b %H:%M %Z")
