"""The ``stormwatch`` command as an engineer uses it: rules, and incidents over the API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from detector.cli import main
from tests.conftest import Shop, alert

REPO = Path(__file__).resolve().parents[2]


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the CLI in a thread, so the service under test keeps answering meanwhile."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """A real server standing where the API should be: ``/api/v1/incidents`` answers an empty
    list, any other path a sign-in page with status 200, as a single sign-on proxy does. Yields
    its URL and the ``state`` query values it received."""
    states: list[str] = []

    async def incidents(request: web.Request) -> web.Response:
        states.append(request.query.getone("state"))
        return web.json_response({"incidents": []})

    async def sign_in(_request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Sign in to Example SSO</body></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_route("*", "/{tail:.*}", sign_in)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), states


def stormwatch(tmp_path: Path, *argv: str, **env: str) -> tuple[int, str]:
    """Run the installed command in its own process, as a shell would: exit code and everything
    it printed (tracebacks included)."""
    clean = {
        name: value for name, value in os.environ.items() if not name.startswith("STORMWATCH_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "detector", *argv],
        env=clean | {f"STORMWATCH_{name}": value for name, value in env.items()},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


class TestRulesCommands:
    async def test_check_accepts_the_shipped_rules(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out = await run(capsys, "rules", "check", str(REPO / "rules"))
        assert code == 0
        assert out.strip().endswith("OK")

    async def test_check_names_file_line_and_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "bad.yml").write_text(
            "rules:\n  - name: x\n    severity: major\n    title: t\n    match: ['a=~\"(\"']\n"
        )
        code, out = await run(capsys, "rules", "check", str(tmp_path))
        assert code == 1
        assert f"{tmp_path / 'bad.yml'}:5: rules[0].match[0]: invalid regex" in out

    async def test_rule_tests_pass_and_fail_with_a_diff(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out = await run(capsys, "rules", "test", str(REPO / "rules/tests/database.test.yml"))
        assert code == 0, out
        failing = tmp_path / "tests" / "wrong.test.yml"
        failing.parent.mkdir()
        failing.write_text(
            f"rules: {REPO / 'rules'}\n"
            "tests:\n"
            "  - name: wrong severity\n"
            "    alerts:\n"
            "      - at: 0s\n"
            "        labels: {alertname: PgBouncerPoolSaturated, severity: page,"
            " cluster: c, database: d}\n"
            "    expect:\n"
            "      incidents:\n"
            "        - {rule: db-connection-pool-exhausted, severity: minor}\n"
        )
        code, out = await run(capsys, "rules", "test", str(failing))
        assert code == 1
        assert "wrong severity ... FAILED" in out
        assert "-  severity: minor" in out
        assert "+  severity: critical" in out
        assert "0 scenarios passed, 1 failed" in out

    async def test_schema_is_json_schema(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out = await run(capsys, "rules", "schema")
        assert code == 0
        schema = json.loads(out)
        assert "for" in schema["$defs"]["RuleSpec"]["properties"]
        assert {"people", "schedules"} <= set(schema["properties"])
        assert "targets" in schema["$defs"]["StepSpec"]["properties"]


class TestIncidentCommands:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"api_token": "cli-token"}

    async def test_list_show_ack_resolve(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        api = ["--url", str(shop.client.make_url("")).rstrip("/"), "--token", "cli-token"]

        code, out = await run(capsys, "incidents", "list", *api)
        assert code == 0
        assert "triggered" in out
        assert "Connection pool exhausted on eu-1" in out

        code, out = await run(capsys, "ack", "1", "--by", "maria", *api)
        assert (code, out.strip()) == (0, "incident 1: acknowledged")

        code, out = await run(capsys, "incidents", "show", "1", *api)
        assert code == 0
        assert "state: acknowledged" in out
        assert "incident.acknowledged" in out

        code, out = await run(capsys, "resolve", "1", "--reason", "pool resized", *api)
        assert (code, out.strip()) == (0, "incident 1: resolved")

    async def test_wrong_token_is_a_clear_error(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = str(shop.client.make_url("")).rstrip("/")
        code, out = await run(capsys, "incidents", "list", "--url", url, "--token", "nope")
        assert code == 1
        assert "HTTP 401" in out
        assert "Authorization" in out

    async def test_unreachable_service(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out = await run(capsys, "incidents", "list", "--url", "http://127.0.0.1:9")
        assert code == 1
        assert "cannot reach http://127.0.0.1:9" in out


class TestApiAnswers:
    @pytest.mark.parametrize(
        "argv",
        [("incidents", "show", "7"), ("ack", "7")],
        ids=["GET", "POST"],
    )
    async def test_a_page_instead_of_json_is_a_one_line_error(
        self,
        proxy: tuple[str, list[str]],
        capsys: pytest.CaptureFixture[str],
        argv: tuple[str, ...],
    ) -> None:
        url, _states = proxy
        code, out = await run(capsys, *argv, "--url", url)
        assert code == 1
        assert out == "error: HTTP 200: expected JSON, got text/html; charset=utf-8\n"

    async def test_state_reaches_the_service_as_typed(
        self, proxy: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        url, states = proxy
        code, out = await run(
            capsys, "incidents", "list", "--state", "open&limit=1 #x", "--url", url
        )
        assert (code, out) == (0, "no incidents\n")
        assert states == ["open&limit=1 #x"]


class TestStartUpErrors:
    """A database URL holds a password: however start-up fails, none of it is printed."""

    @pytest.mark.parametrize("command", ["serve", "migrate"])
    def test_a_password_with_a_slash_is_a_settings_error(
        self, tmp_path: Path, command: str
    ) -> None:
        url = "postgresql://sw:S3cret/Pw@127.0.0.1:1/stormwatch"
        code, out = stormwatch(tmp_path, command, DATABASE_URL=url)
        assert code == 2
        assert out.startswith("invalid settings:\n  STORMWATCH_DATABASE_URL: ")
        assert "percent-encode" in out
        assert "S3cret" not in out

    @pytest.mark.parametrize(("command", "verb"), [("serve", "start"), ("migrate", "migrate")])
    def test_an_unreachable_database_is_one_line(
        self, tmp_path: Path, command: str, verb: str
    ) -> None:
        url = "postgresql://sw:S3cret@127.0.0.1:1/stormwatch"  # nothing listens on port 1
        code, out = stormwatch(tmp_path, command, DATABASE_URL=url)
        assert (code, out) == (
            1,
            f"cannot {verb}: cannot connect to the database at STORMWATCH_DATABASE_URL "
            "(ConnectionRefusedError)\n",
        )


class TestMigrate:
    async def test_migrate_applies_and_exits(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("STORMWATCH_DATABASE_URL", database_url)
        monkeypatch.setenv("STORMWATCH_LOG_FORMAT", "json")
        code, out = await run(capsys, "migrate")
        assert code == 0
        assert '"event": "migration.applied"' in out


def with_reader_gone(tmp_path: Path, *argv: str) -> tuple[int, str]:
    """Run the command with stdout a pipe whose reader has gone before the command writes, as
    ``stormwatch ... | head -1`` leaves it once head has its line: exit code and stderr."""
    clean = {
        name: value for name, value in os.environ.items() if not name.startswith("STORMWATCH_")
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "detector", *argv],
        env=clean,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


READER_GONE = 141
"""128 + SIGPIPE: what a shell reports for a command a closed pipe ended (``yes | head -1``),
so a ``set -o pipefail`` script can tell the output was cut short."""


@pytest.fixture
async def other_service() -> AsyncIterator[str]:
    """A service that answers every request with JSON of another shape: ``{}``."""

    async def anything(_request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


class TestInAPipeline:
    @pytest.mark.parametrize(
        "argv",
        [
            ("rules", "schema"),
            ("rules", "schema", "--tests"),
            ("rules", "check", str(REPO / "rules")),
            ("rules", "test", str(REPO / "rules/tests/database.test.yml")),
        ],
        ids=["schema", "test schema", "check", "test"],
    )
    def test_a_reader_that_goes_away_ends_the_command_quietly(
        self, tmp_path: Path, argv: tuple[str, ...]
    ) -> None:
        assert with_reader_gone(tmp_path, *argv) == (READER_GONE, "")

    async def test_an_api_command_too(self, tmp_path: Path, proxy: tuple[str, list[str]]) -> None:
        url, _states = proxy
        argv = ("incidents", "list", "--json", "--url", url)
        assert await asyncio.to_thread(with_reader_gone, tmp_path, *argv) == (READER_GONE, "")

    async def test_an_unexpected_failure_is_one_line_without_a_traceback(
        self, tmp_path: Path, other_service: str
    ) -> None:
        argv = ("incidents", "show", "7", "--url", other_service)
        code, out = await asyncio.to_thread(stormwatch, tmp_path, *argv)
        assert (code, out) == (1, "stormwatch: unexpected error: KeyError: 'id'\n")
