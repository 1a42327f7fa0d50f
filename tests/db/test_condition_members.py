"""A condition's waiting members on real PostgreSQL: a batch reads the members it names, not the
group, however large the group grew after the engine first read it, once the grown table's
statistics were refreshed (as the engine's statistics stage does within seconds)."""

from __future__ import annotations

import json

import asyncpg

from detector.intake.alertmanager import parse_payload, to_signals
from detector.ruleset.waiting import Need, dump_signal, occurrence_key
from detector.store import conditions, statistics
from detector.store.connection import Connection
from tests.conftest import alert, payload
from tests.fakes import T0

RULE, GROUP = "checkout-failing-db-pool-exhausted", '{cluster="eu-1"}'
GROWN = 5_000
WANTED = 50  # a batch's new alerts


def pools(first: int, count: int) -> list[str]:
    """The member keys of ``count`` saturated pools, stored in this order."""
    alerts = [alert(cluster="eu-1", pool=f"pool-{n}") for n in range(first, first + count)]
    signals = to_signals(parse_payload(json.dumps(payload(*alerts)).encode()), T0)
    return [occurrence_key(signal) for signal in signals], signals  # type: ignore[return-value]


async def add_members(connection: Connection, first: int, count: int) -> list[str]:
    keys, signals = pools(first, count)
    await connection.execute(
        """INSERT INTO condition_members (rule, group_key, key, at, signal)
           SELECT $1, $2, m.key, $3, m.signal
           FROM ROWS FROM (unnest($4::text[]), json_array_elements($5::json))
             WITH ORDINALITY AS m (key, signal, n)
           ORDER BY m.n""",
        RULE,
        GROUP,
        T0,
        keys,
        [dump_signal(signal) for signal in signals],
    )
    return keys


async def rows_read(pool: asyncpg.Pool) -> int:
    """Rows of condition_members read so far, by table scans and from its indexes."""
    value: int = await pool.fetchval(
        """SELECT t.seq_tup_read + (SELECT sum(i.idx_tup_read) FROM pg_stat_user_indexes i
                                    WHERE i.relid = t.relid)
           FROM pg_stat_user_tables t WHERE t.relname = 'condition_members'"""
    )
    return value


async def read(connection: Connection, keys: list[str]) -> list[str]:
    async with connection.transaction():
        found = await conditions.members(connection, RULE, GROUP, Need(keys=frozenset(keys)))
    await connection.execute("SELECT pg_stat_force_next_flush()")  # counted before it answers
    return [member.key for member in found]


async def test_a_batch_reads_its_members_by_key_after_the_group_grew(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        first = await add_members(connection, 0, 20)
        for _ in range(8):  # reads while the group is small settle a prepared statement's plan
            assert await read(connection, first[:3]) == first[:3]
        grown = first + await add_members(connection, 20, GROWN - 20)
        await connection.execute("SELECT pg_stat_force_next_flush()")
        assert await statistics.refresh(connection) == ["condition_members"]
        assert await statistics.refresh(connection) == []  # counted once per growth
        wanted = grown[100 : 100 + WANTED]
        before = await rows_read(pool)
        assert await read(connection, list(reversed(wanted))) == wanted  # in arrival order
        read_rows = await rows_read(pool) - before
    assert WANTED <= read_rows < 2 * WANTED, f"read {read_rows} members to find {WANTED}"
