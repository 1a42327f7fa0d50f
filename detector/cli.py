"""The ``stormwatch`` command: run the service, check rules, and work incidents from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from detector import component_commands, notices_cli, oncall_cli, report_cli
from detector.api_client import ApiClient, ApiError
from detector.cli_output import show
from detector.demo import command as demo
from detector.demo_shop import command as demo_shop
from detector.ruleset.loader import RulesInvalid, load_ruleset
from detector.ruleset.rules_file import RulesFile
from detector.ruletest.runner import run_file
from detector.ruletest.schema import RuleTestFile
from detector.service.serve import migrate_only, serve
from detector.service.settings import SettingsError, load_settings

DEFAULT_URL = "http://127.0.0.1:9095"
log = structlog.get_logger(__name__)
READER_GONE = 128 + signal.SIGPIPE
"""The status a shell reports for a command killed by SIGPIPE (141), as ``yes | head`` ends:
the output was cut short, which ``set -o pipefail`` scripts can tell."""
INTERRUPTED = 128 + signal.SIGINT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stormwatch",
        description="Incident detection and response for online shops. "
        "Settings come from STORMWATCH_* environment variables (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve", help="run the service (embedded PostgreSQL unless STORMWATCH_DATABASE_URL is set)"
    )
    commands.add_parser("migrate", help="apply database migrations and exit")
    _add_rules_commands(commands)
    _add_client_commands(commands)
    demo_shop.add_to(commands)
    demo.add_to(commands)
    return parser


def _add_rules_commands(commands: Any) -> None:
    rules = commands.add_parser("rules", help="work with rule files").add_subparsers(
        dest="rules_command", required=True, metavar="ACTION"
    )
    check = rules.add_parser(
        "check", help="validate a rules directory; print file:line: field: reason"
    )
    check.add_argument(
        "directory", nargs="?", type=Path, help="default: STORMWATCH_RULES_DIR or ./rules"
    )
    test = rules.add_parser(
        "test", help="run rule tests: alerts at relative times in, expected incidents and pages out"
    )
    test.add_argument("files", nargs="+", type=Path, metavar="FILE")
    schema = rules.add_parser("schema", help="print the JSON Schema of rule files (for editors)")
    schema.add_argument(
        "--tests", action="store_true", help="print the schema of rule-test files instead"
    )


def _add_client_commands(commands: Any) -> None:
    """Commands that talk to a running service over its API."""
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--url",
        default=os.environ.get("STORMWATCH_URL", DEFAULT_URL),
        help="service URL (STORMWATCH_URL)",
    )
    client.add_argument(
        "--token",
        default=os.environ.get("STORMWATCH_API_TOKEN"),
        help="API token (STORMWATCH_API_TOKEN)",
    )
    client.add_argument("--json", action="store_true", help="print raw JSON")

    incidents = commands.add_parser("incidents", help="list or show incidents").add_subparsers(
        dest="incidents_command", required=True, metavar="ACTION"
    )
    listing = incidents.add_parser("list", parents=[client], help="list incidents")
    listing.add_argument(
        "--state", default="open", help="open (default), all, triggered, acknowledged, resolved"
    )
    show = incidents.add_parser(
        "show", parents=[client], help="show one incident with its timeline"
    )
    show.add_argument("id", type=int)

    ack = commands.add_parser(
        "ack", parents=[client], help="acknowledge an incident (stops escalation)"
    )
    ack.add_argument("id", type=int)
    ack.add_argument(
        "--as",
        "--by",
        dest="by",
        default=os.environ.get("USER", "cli"),
        help="who acknowledges (default: $USER)",
    )
    commands.add_parser(
        "probes", parents=[client], help="list journeys with their last results per location"
    )
    resolve = commands.add_parser("resolve", parents=[client], help="resolve an incident")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--by", default=os.environ.get("USER", "cli"))
    resolve.add_argument("--reason", default="resolved by hand")
    notices_cli.add_commands(commands, client)
    component_commands.add_commands(commands, client)
    report_cli.add_commands(commands, client)
    oncall_cli.add_commands(commands, client)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    Whatever goes wrong ends in one line on stderr, never a traceback; a reader that goes away
    (``stormwatch rules schema | head -1``) ends the command quietly with ``READER_GONE``.
    """
    args = _parser().parse_args(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a reader gone shows here rather than at exit, where it is noisy
    except BrokenPipeError:
        return _reader_gone()
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    except ApiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as err:  # the last resort: one line instead of a traceback
        _report_unexpected(err)
        return 1
    return code


def _reader_gone() -> int:
    """Point stdout at /dev/null, so the interpreter's last flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return READER_GONE


def _report_unexpected(err: Exception) -> None:
    """One line: through the service's logging when the command set it up (``serve`` and
    ``migrate``, so a JSON log stays JSON), else plainly on stderr."""
    lines = str(err).strip().splitlines()
    summary = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    if structlog.is_configured():
        log.critical("command.failed", error=summary)
    else:
        print(f"stormwatch: unexpected error: {summary}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return serve(load_settings())
    if args.command == "migrate":
        return asyncio.run(migrate_only(load_settings()))
    if args.command == "rules":
        return _rules_command(args)
    if args.command == "demo-shop":
        return demo_shop.run(args)
    if args.command == "demo":
        return demo.run(args)
    return _client_command(args, ApiClient(args.url, args.token))


def _client_command(args: argparse.Namespace, api: ApiClient) -> int:
    if args.command in notices_cli.COMMANDS:
        return show(args, notices_cli.request(args, api), notices_cli.render)
    if args.command == "components":
        return component_commands.run(args, api)
    if args.command in report_cli.COMMANDS:
        return report_cli.run(args, api)
    if args.command in oncall_cli.COMMANDS:
        return oncall_cli.run(args, api)
    return show(args, *_incident_request(args, api))


def _incident_request(args: argparse.Namespace, api: ApiClient) -> tuple[Any, Any]:
    """The answer to an incidents, probes, ack or resolve command, and how to show it."""
    if args.command == "incidents" and args.incidents_command == "list":
        return api.get("/api/v1/incidents", {"state": args.state}), _incident_table
    if args.command == "incidents":
        return api.get(f"/api/v1/incidents/{args.id}"), _incident_detail
    if args.command == "probes":
        return api.get("/api/v1/probes"), _probe_table
    if args.command == "ack":
        body = {"by": args.by, "via": "cli"}
        return api.post(f"/api/v1/incidents/{args.id}/ack", body), _result
    body = {"by": args.by, "reason": args.reason}
    return api.post(f"/api/v1/incidents/{args.id}/resolve", body), _result


def _rules_command(args: argparse.Namespace) -> int:
    if args.rules_command == "test":
        return _test_rules(args.files)
    if args.rules_command == "schema":
        model = RuleTestFile if args.tests else RulesFile
        print(json.dumps(model.model_json_schema(by_alias=True), indent=2))
        return 0
    return _check_rules(args.directory)


def _test_rules(files: list[Path]) -> int:
    passed = failed = 0
    for path in files:
        try:
            results = run_file(path)
        except RulesInvalid as err:
            for error in err.errors:
                print(error)
            failed += 1
            continue
        for result in results:
            print(f"{result.location}: {result.name} ... {'ok' if result.passed else 'FAILED'}")
            if not result.passed:
                print("    " + result.diff.rstrip().replace("\n", "\n    "))
            passed += result.passed
            failed += not result.passed
    print(f"{passed} scenarios passed, {failed} failed")
    return 1 if failed else 0


def _check_rules(directory: Path | None) -> int:
    target = directory or Path(os.environ.get("STORMWATCH_RULES_DIR", "rules"))
    try:
        rules = load_ruleset(target)
    except RulesInvalid as err:
        for error in err.errors:
            print(error)
        print(f"{len(err.errors)} error(s) in {target}", file=sys.stderr)
        return 1
    for warning in rules.warnings:
        print(warning)
    warned = f", {len(rules.warnings)} warning(s)" if rules.warnings else ""
    print(
        f"{target}: {len(rules.rules)} rules, {len(rules.channels)} channels, "
        f"{len(rules.policies)} escalation policies, {len(rules.people)} people, "
        f"{len(rules.schedules)} schedules in {len(rules.files)} files{warned}: OK"
    )
    return 0


def _incident_table(data: dict[str, Any]) -> str:
    rows = data["incidents"]
    if not rows:
        return "no incidents"
    lines = [f"{'ID':>6}  {'STATE':<12}  {'SEVERITY':<8}  {'OPENED':<20}  TITLE"]
    for row in rows:
        lines.append(
            f"{row['id']:>6}  {row['state']:<12}  {row['severity']:<8}  "
            f"{row['opened_at'][:19]:<20}  {row['title']}"
        )
    return "\n".join(lines)


def _incident_detail(data: dict[str, Any]) -> str:
    lines = [
        f"#{data['id']} {data['title']}",
        f"state: {data['state']}   severity: {data['severity']}   rule: {data['rule']}",
        f"component: {data['component'] or '-'}   opened: {data['opened_at']}",
        f"summary: {data['summary']}",
        f"alerts: {sum(1 for a in data['alerts'] if a['status'] == 'firing')} firing, "
        f"{len(data['alerts'])} in all",
    ]
    if data.get("related"):
        others = (f"#{o['id']} {o['title']} ({o['state']})" for o in data["related"])
        lines.append(f"related: {', '.join(others)}")
    if data.get("impact"):
        lines.append(f"impact: {data['impact']['summary']}")
    lines.append("timeline:")
    lines += [
        f"  {event['at'][:19]}  {event['kind']:<22} {json.dumps(event['detail'])}"
        for event in data["timeline"]
    ]
    return "\n".join(lines)


def _probe_table(data: dict[str, Any]) -> str:
    """One line per journey and location: standing, last run and, when failing, the evidence."""
    rows = data["journeys"]
    if not rows:
        return "no journeys have run"
    lines = [f"{'JOURNEY':<24}  {'LOCATION':<12}  {'STATE':<8}  {'LAST RUN':<20}  LAST FAILURE"]
    for row in rows:
        failure = row["last_failure"] or {}
        step = next((s for s in failure.get("steps", []) if s["status"] == "failed"), None)
        evidence = "-"
        if step is not None:
            status = f" HTTP {step['http_status']}" if step["http_status"] else ""
            evidence = f"{failure['started_at'][:19]} {step['name']}: {step['reason']}{status}"
        lines.append(
            f"{row['journey']:<24}  {row['location']:<12}  {row['state']:<8}  "
            f"{(row['last_run_at'] or '-')[:19]:<20}  {evidence}"
        )
    return "\n".join(lines)


def _result(data: dict[str, Any]) -> str:
    return f"incident {data['id']}: {data['result'].replace('_', ' ')}"


if __name__ == "__main__":
    sys.exit(main())
