"""How the service names its PostgreSQL connections (``application_name`` in the URL)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from detector.service.database import named


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql://sw:s%40cret@db.internal:5432/stormwatch",
            "postgresql://sw:s%40cret@db.internal:5432/stormwatch?application_name=stormwatch-web",
            id="plain",
        ),
        pytest.param(
            "postgresql://postgres:@/postgres?host=/run/postgresql&sslmode=disable",
            "postgresql://postgres:@/postgres?host=%2Frun%2Fpostgresql&sslmode=disable"
            "&application_name=stormwatch-web",
            id="other parameters kept",
        ),
        pytest.param(
            "postgres://sw@db/stormwatch?application_name=shop-alerting",
            "postgres://sw@db/stormwatch?application_name=shop-alerting",
            id="the operator's own name wins",
        ),
        pytest.param("", "", id="empty: the PG environment's defaults"),
    ],
)
def test_connections_say_which_process_they_serve(url: str, expected: str) -> None:
    assert named(url, "stormwatch-web") == expected


def test_the_name_is_read_back_as_postgresql_reads_it() -> None:
    url = named("postgresql://postgres:@/postgres?host=/run/postgresql", "stormwatch-engine")
    assert parse_qs(urlsplit(url).query) == {
        "host": ["/run/postgresql"],
        "application_name": ["stormwatch-engine"],
    }
