"""``stormwatch oncall`` against a running service: who is on call, the feeds, and an override
made, listed and deleted from a terminal at 3 a.m."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from detector.cli import main
from detector.oncall_cli import moment
from tests.api.oncall_service import BERLIN, OnCallService, serving, with_on_call
from tests.conftest import Shop
from tests.fakes import T0

HOUR = timedelta(hours=1)


@pytest.fixture
async def oncall(shop: Shop) -> AsyncIterator[OnCallService]:
    async with serving(shop, with_on_call(shop.services.rules.current)) as service:
        yield service


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in a thread (the service keeps answering): exit code, stdout, stderr."""
    capsys.readouterr()  # the service's log lines so far
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, _without_logs(captured.out), captured.err


def _without_logs(out: str) -> str:
    return "\n".join(line for line in out.splitlines() if " [info     ] " not in line)


class TestWhoIsOnCall:
    async def test_a_table_of_schedules(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = await run(capsys, "oncall", "--url", oncall.url)

        assert code == 0
        header, primary, secondary = out.splitlines()
        assert header.split() == ["SCHEDULE", "ON", "CALL", "UNTIL", "NEXT"]
        assert primary.startswith("primary")
        assert "Bob Example (bob)" in primary
        assert "Sat 28 Nov 09:00 CET" in primary  # the handoff in Berlin time
        assert "Carol Example (carol) Sat 28 Nov 09:00 CET" in primary
        assert secondary.split()[:2] == ["secondary", "nobody"]
        assert "Dan Example (dan) Fri 27 Nov 09:00 EST" in secondary

    async def test_one_schedule_as_json(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = await run(capsys, "oncall", "primary", "--json", "--url", oncall.url)

        assert code == 0
        [primary] = json.loads(out)["schedules"]
        assert primary["on_call"]["id"] == "bob"

    async def test_the_feeds_to_subscribe_to(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = await run(capsys, "oncall", "--calendar", "--url", oncall.url)

        assert code == 0
        lines = out.splitlines()
        base = "https://stormwatch.example/calendar"
        assert lines[0].startswith(f"schedule primary: {base}/schedules/primary.ics?sig=")
        assert any(line.startswith(f"person alice: {base}/people/alice.ics?sig=") for line in lines)

    async def test_an_unknown_schedule(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = await run(capsys, "oncall", "nope", "--url", oncall.url)
        assert (code, err) == (1, "error: HTTP 404: no such schedule (schedule)\n")


class TestOverrides:
    async def test_make_list_and_delete(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        api = ("--url", oncall.url)
        until = (T0 + 2 * HOUR).isoformat()

        code, out, _ = await run(
            capsys, "oncall", "override", "primary", "--person", "alice", "--until", until,
            "--as", "maria", *api,
        )  # fmt: skip
        assert code == 0
        assert out == (
            "override 1 on primary: Alice Example (alice) from 2026-11-27T09:00:00+00:00"
            " until 2026-11-27T11:00:00+00:00 (by maria)"
        )

        code, out, _ = await run(capsys, "oncall", "primary", *api)
        assert "Alice Example (alice)" in out.splitlines()[1]

        code, out, _ = await run(capsys, "oncall", "overrides", "primary", *api)
        assert code == 0
        header, row = out.splitlines()
        assert header.split() == ["ID", "PERSON", "FROM", "UNTIL", "BY"]
        assert row.split() == [
            "1", "Alice", "Example", "(alice)", "2026-11-27T09:00:00+00:00",
            "2026-11-27T11:00:00+00:00", "maria",
        ]  # fmt: skip

        code, out, _ = await run(
            capsys, "oncall", "override-delete", "primary", "1", "--as", "sam", *api
        )
        assert (code, out) == (0, "override 1 on primary deleted")
        code, out, _ = await run(capsys, "oncall", "overrides", "primary", *api)
        assert out == "no current or future overrides on primary"
        async with oncall.services.pool.acquire() as connection:
            deleted_by = await connection.fetchval(
                "SELECT deleted_by FROM oncall_overrides WHERE id = 1"
            )
        assert deleted_by == "sam"

    async def test_until_a_local_time_in_the_schedules_zone(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--until 08:00`` is the next 08:00 in Berlin after the command runs."""
        before = datetime.now(UTC)
        code, out, err = await run(
            capsys, "oncall", "override", "primary", "--person", "carol", "--until", "08:00",
            "--json", "--url", oncall.url,
        )  # fmt: skip

        assert code == 0, err
        end = datetime.fromisoformat(json.loads(out)["end"])
        assert end.astimezone(BERLIN).time().isoformat() == "08:00:00"
        assert before < end <= datetime.now(UTC) + 24 * HOUR

    async def test_from_and_until_the_next_morning(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        start = (T0 + 12 * HOUR).isoformat()  # 22:00 in Berlin
        code, out, err = await run(
            capsys, "oncall", "override", "primary", "--person", "carol", "--from", start,
            "--until", "06:00", "--json", "--url", oncall.url,
        )  # fmt: skip

        assert code == 0, err
        made = json.loads(out)
        assert (made["start"], made["end"]) == (start, (T0 + 20 * HOUR).isoformat())

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (("override", "primary", "--until", "08:00"), "override needs --person and --until"),
            (("override", "primary", "--person", "bob"), "override needs --person and --until"),
            (("override",), "override takes SCHEDULE"),
            (("override-delete", "primary"), "override-delete takes SCHEDULE ID"),
            (("override-delete", "primary", "one"), "ID must be a number"),
            (("primary", "secondary"), "give at most one SCHEDULE"),
            (
                ("override", "primary", "--person", "bob", "--until", "soon"),
                "--until: 'soon' is neither HH:MM nor an ISO 8601 time",
            ),
        ],
        ids=[
            "no-person",
            "no-until",
            "no-schedule",
            "no-id",
            "id-not-a-number",
            "two-schedules",
            "bad-time",
        ],
    )
    async def test_usage_errors_exit_2(
        self,
        oncall: OnCallService,
        capsys: pytest.CaptureFixture[str],
        argv: tuple[str, ...],
        message: str,
    ) -> None:
        code, out, err = await run(capsys, "oncall", *argv, "--url", oncall.url)
        assert (code, out) == (2, "")
        assert err.endswith(f"stormwatch oncall: error: {message}\n")

    async def test_the_services_refusal_names_the_field(
        self, oncall: OnCallService, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = await run(
            capsys, "oncall", "override", "primary", "--person", "mallory", "--until", "08:00",
            "--url", oncall.url,
        )  # fmt: skip
        assert (code, err) == (1, "error: HTTP 400: no such person in the on-call files (person)\n")


AFTER = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)  # Saturday; Berlin springs forward on Sunday


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("14:00", "Europe/Berlin", datetime(2027, 3, 27, 13, 0, tzinfo=UTC)),
        ("13:00", "Europe/Berlin", datetime(2027, 3, 28, 11, 0, tzinfo=UTC)),
        ("08:00", "Europe/Berlin", datetime(2027, 3, 28, 6, 0, tzinfo=UTC)),
        ("08:00", "America/New_York", datetime(2027, 3, 28, 12, 0, tzinfo=UTC)),
        ("2027-03-29T08:00:00+02:00", "Europe/Berlin", datetime(2027, 3, 29, 6, 0, tzinfo=UTC)),
        ("2027-03-29T08:00", "Europe/Berlin", datetime(2027, 3, 29, 6, 0, tzinfo=UTC)),
        ("2027-03-29T08:00Z", "Europe/Berlin", datetime(2027, 3, 29, 8, 0, tzinfo=UTC)),
    ],
    ids=[
        "later-today",
        "passed-so-tomorrow",
        "tomorrow-after-the-spring-change",
        "new-york",
        "iso-with-offset",
        "iso-local",
        "iso-utc",
    ],
)
def test_times_on_the_command_line(text: str, zone: str, expected: datetime) -> None:
    assert moment(text, ZoneInfo(zone), AFTER) == expected


@pytest.mark.parametrize("text", ["25:00", "soon", "8am"])
def test_times_that_are_not(text: str) -> None:
    with pytest.raises(ValueError, match="is neither HH:MM nor an ISO 8601 time"):
        moment(text, ZoneInfo("Europe/Berlin"), AFTER)
