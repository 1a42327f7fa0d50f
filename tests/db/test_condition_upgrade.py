"""Upgrading a database whose rule conditions are waiting: the state an earlier version kept as
one JSON document (every waiting alert inside it) moves to one row per alert, and the groups
decide afterwards exactly as they would have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from detector.store.migrate import migration_files
from tests.conftest import Shop, alert
from tests.db.test_conditions_durable import CONDITION_RULES
from tests.fakes import T0, PageReceiver

UPGRADE = "0012_group_members_and_backlog"


def waiting_signal(alertname: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    """A waiting alert as the earlier version stored it."""
    return {
        "source": "alertmanager",
        "name": alertname,
        "fingerprint": fingerprint,
        "status": "firing",
        "starts_at": T0.isoformat(),
        "ends_at": None,
        "labels": {"alertname": alertname, **labels},
        "annotations": {"summary": alertname},
        "received_at": T0.isoformat(),
    }


POOLS = {
    f"00a{n}@{T0.isoformat()}": {
        "since": T0.isoformat(),
        "signal": waiting_signal(
            "PgBouncerPoolSaturated", f"00a{n}", cluster="eu-1", instance=f"pgb-{n}"
        ),
    }
    for n in range(2)
}
PROBE = {
    "at": T0.isoformat(),
    "value": "fra",
    "signal": waiting_signal("SyntheticCheckoutFailed", "0f0a", location="fra"),
}


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "conditions.yml").write_text(CONDITION_RULES.format(pager_url=pager.url))
    return directory


@pytest.fixture
async def database_url(database_url: str) -> str:
    """The database as the earlier version left it, two groups waiting; the service started
    on it applies the upgrade."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in migration_files():
            if version >= UPGRADE:
                break
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_migrations VALUES ($1)", version)
        await connection.executemany(
            """INSERT INTO conditions (rule, group_key, group_labels, state, updated_at)
               VALUES ($1, $2, $3::jsonb, $4::jsonb, $5)""",
            [
                (
                    "checkout-down-db-pool",
                    '{cluster="eu-1"}',
                    json.dumps({"cluster": "eu-1"}),
                    json.dumps({"pending": POOLS}),
                    T0,
                ),
                ("probe-failing", "{}", "{}", json.dumps({"events": [PROBE]}), T0),
            ],
        )
    finally:
        await connection.close()
    return database_url


async def held(shop: Shop, title: str) -> set[str]:
    rows = await shop.services.pool.fetch(
        """SELECT a.fingerprint FROM incidents i JOIN incident_alerts a ON a.incident_id = i.id
           WHERE i.title = $1""",
        title,
    )
    return {row["fingerprint"] for row in rows}


async def test_waiting_alerts_move_to_rows_and_are_released_as_before(shop: Shop) -> None:
    pool = shop.services.pool
    assert await pool.fetchval("SELECT count(*) FROM condition_members") == 3

    await shop.post_alerts(alert("CheckoutErrorSpike", cluster="eu-1", fingerprint="5e1e"))
    await shop.post_alerts(alert("SyntheticCheckoutFailed", location="iad", fingerprint="1ad0"))
    await shop.cycle()

    assert await held(shop, "Checkout failing: database pool exhausted on eu-1") == {
        "00a0",
        "00a1",
        "5e1e",
    }
    assert await held(shop, "Synthetic checkout failing from several locations") == {
        "0f0a",
        "1ad0",
    }
    assert await pool.fetchval("SELECT count(*) FROM condition_members") == 0
