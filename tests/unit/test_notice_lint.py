"""Customer text stays plain: jargon is found by shape and by the shop's list, templates are
rendered with sample values and checked, and ``rules check`` names file, line and words."""

from __future__ import annotations

import pickle
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from detector.cli import main
from detector.ruleset.loader import RulesInvalid, load_ruleset
from responders.notices.cadence import (
    Punctuality,
    Reminded,
    commander,
    next_update_at,
    parse_eta,
    punctuality,
    reminded,
    reminder_at,
    shop_time,
)
from responders.notices.lint import Vocabulary, jargon, sample_values
from responders.notices.model import NoticeKind

SHIPPED = Path(__file__).resolve().parents[2] / "rules"
BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Checkout is slow. Your cart is kept; use PayPal meanwhile.", []),
        ("A stuck job held connections until 14:30.", []),
        ("db-primary-01.eu-prod.internal is down", ["db-primary-01.eu-prod.internal"]),
        ("pool on pg-main-2 is full", ["pg-main-2"]),
        ("requests to 10.0.3.4:6432 time out", ["10.0.3.4:6432"]),
        ("we route around fe80::1 now", ["fe80::1"]),
        ("pgbouncer_pools_client_waiting rose", ["pgbouncer_pools_client_waiting"]),
        (
            'Traceback (most recent call last): File "x.py", line 3',
            ["Traceback (most recent call last)", 'File "x.py", line 3'],
        ),
        ("raised ConnectionRefusedError", ["ConnectionRefusedError"]),
        ("the 5XX rate and PGBOUNCER", ["PGBOUNCER", "5XX"]),
        ("PgBouncerPoolSaturated fired", ["PgBouncerPoolSaturated"]),
    ],
)
def test_jargon(text: str, found: list[str]) -> None:
    words = Vocabulary(("PgBouncer", "5xx"), frozenset({"PgBouncerPoolSaturated"}))
    assert jargon(text, words) == found


def test_cadence() -> None:
    every = timedelta(minutes=30)
    assert next_update_at(NOON, every) == NOON + every
    assert next_update_at(NOON, every, NOON + timedelta(minutes=10)) == NOON + timedelta(minutes=10)
    assert reminder_at(NOON + every, timedelta(minutes=5), NOON) == NOON + timedelta(minutes=25)
    assert reminder_at(NOON + timedelta(minutes=2), timedelta(minutes=5), NOON) == NOON
    assert punctuality(NOON, NOON) is Punctuality.ON_TIME
    assert punctuality(NOON, NOON + timedelta(seconds=1)) is Punctuality.LATE
    assert punctuality(None, NOON) is Punctuality.ON_TIME
    assert commander("maria", "joe") == "maria"
    assert commander(None, "joe") == "joe"
    assert shop_time(NOON, BERLIN) == "13:00 CET"
    assert shop_time(NOON + timedelta(days=1), BERLIN, NOON) == "Sat 28 Nov 13:00 CET"
    assert parse_eta("14:30", BERLIN, NOON) == datetime(2026, 11, 27, 13, 30, tzinfo=UTC)
    assert parse_eta("12:30", BERLIN, NOON) == datetime(2026, 11, 28, 11, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="has passed"):
        parse_eta("2026-11-27T11:00:00+00:00", BERLIN, NOON)


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(SHIPPED, directory, ignore=shutil.ignore_patterns("tests", "*.md"))
    (directory / "notices").mkdir()
    return directory


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(RulesInvalid) as raised:
        load_ruleset(directory)
    return [str(error) for error in raised.value.errors]


class TestRulesCheck:
    def test_the_shipped_pack_and_its_notice_texts_pass(self) -> None:
        sent = pickle.dumps(load_ruleset(SHIPPED))  # as the engine process sends its rules
        rules = pickle.loads(sent)  # noqa: S301 - our own bytes
        first = rules.notice_templates.render(
            NoticeKind.FIRST_NOTICE, sample_values(NoticeKind.FIRST_NOTICE)
        )
        assert first.startswith("We are looking into a problem with Checkout and Payments.")
        assert rules.rules["db-connection-pool-exhausted"].notice is not None

    def test_a_first_notice_must_say_what_and_when(self, pack: Path) -> None:
        (pack / "notices" / "first_notice.j2").write_text("We are on it.\n")
        path = pack / "notices" / "first_notice.j2"
        assert errors_of(pack) == [
            f"{path}:1: a first notice must say what is affected ({{{{ component_list }}}})",
            f"{path}:1: a first notice must say when the next update comes"
            " ({{ next_update_at }})",
        ]

    def test_jargon_in_a_template_names_file_line_and_words(
        self, pack: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = pack / "notices" / "update.j2"
        path.write_text("{{ component_list }} is slow.\nThe k8s node at 10.1.2.3 returned 5xx.\n")
        assert main(["rules", "check", str(pack)]) == 1
        assert capsys.readouterr().out.splitlines() == [
            f"{path}:2: internal jargon: 10.1.2.3, 5xx, k8s"
        ]

    def test_template_syntax_and_unknown_names(self, pack: Path) -> None:
        (pack / "notices" / "resolution.j2").write_text("Fixed.\n{% if %}\n")
        (pack / "notices" / "postmortem.j2").write_text(
            "What:\n{{ postmortem.impact }}\n{{ nope }}\n"
        )
        (pack / "notices" / "extra.j2").write_text("hi")
        found = errors_of(pack)
        assert any(
            line.startswith(f"{pack}/notices/extra.j2:1: unknown notice template") for line in found
        )
        assert any(
            line.startswith(f"{pack}/notices/resolution.j2:2: template syntax") for line in found
        )
        assert any(
            line.startswith(f"{pack}/notices/postmortem.j2:3: cannot render: 'nope' is undefined")
            for line in found
        )

    def test_the_sandbox_keeps_templates_out_of_python(self, pack: Path) -> None:
        (pack / "notices" / "holding_update.j2").write_text(
            "{{ component_list }} {{ next_update_at.__class__.__mro__ }}\n"
        )
        (found,) = errors_of(pack)
        assert "cannot render" in found
        assert "unsafe" in found

    def test_jargon_in_a_rules_notice_text(self, pack: Path) -> None:
        database = pack / "database.yml"
        text = database.read_text()
        database.write_text(text.replace("Pages load slowly and", "PgBouncer on db-1 is full and"))
        (found,) = errors_of(pack)
        line = (
            text.splitlines().index(next(x for x in text.splitlines() if "Pages load slowly" in x))
            + 1
        )
        assert found == (
            f"{database}:{line}: rules[0].notice.impact: internal jargon: db-1, PgBouncer"
        )

    def test_publish_modes(self, pack: Path) -> None:
        payments = pack / "payments.yml"
        payments.write_text(payments.read_text().replace("after 5m unless vetoed", "later"))
        (found,) = errors_of(pack)
        assert "rules[0].notice.publish: use 'immediately', 'after DURATION unless vetoed'" in found


PEOPLE = {"jonas", "tomas"}


@pytest.mark.parametrize(
    ("acknowledged_by", "paged", "expected"),
    [
        pytest.param(
            None,
            ("person:jonas:0", "team-chat"),
            Reminded("jonas", ("person:jonas:0", "team-chat")),
            id="unacknowledged: the person paged is the commander",
        ),
        pytest.param(
            None,
            ("person:jonas:0", "team-chat", "person:tomas:0"),
            Reminded("tomas", ("person:tomas:0", "team-chat")),
            id="escalated: the person paged last, not the first one",
        ),
        pytest.param(
            "jonas",
            ("person:jonas:1", "person:tomas:0", "team-chat"),
            Reminded("jonas", ("person:jonas:0", "team-chat")),
            id="acknowledged by a known person: them, at their first method",
        ),
        pytest.param(
            "maria from the form",
            ("person:jonas:0", "team-chat"),
            Reminded("maria from the form", ("person:jonas:0", "team-chat")),
            id="acknowledged by a typed name: everything paged",
        ),
        pytest.param(None, ("team-chat",), Reminded(None, ("team-chat",)), id="channels only"),
    ],
)
def test_who_is_reminded(
    acknowledged_by: str | None, paged: tuple[str, ...], expected: Reminded
) -> None:
    assert reminded(acknowledged_by, paged, PEOPLE) == expected
