"""Stored overrides: who made them, which ones the engine sees for a window, and deletion that
keeps history but stops the override counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from detector.store import oncall_overrides

T0 = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def test_overrides_overlapping_a_window_by_schedule_oldest_first(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as connection:
        first = await oncall_overrides.add(
            connection, "primary", "bob", T0, T0 + 6 * HOUR, "alice", T0
        )
        later = await oncall_overrides.add(
            connection, "primary", "carol", T0 + HOUR, T0 + 2 * HOUR, "bob", T0
        )
        await oncall_overrides.add(connection, "secondary", "dan", T0, T0 + HOUR, "ops", T0)
        await oncall_overrides.add(
            connection, "primary", "erin", T0 + 7 * HOUR, T0 + 8 * HOUR, "ops", T0
        )

        found = await oncall_overrides.overlapping(
            connection, ["primary"], T0 + HOUR, T0 + 3 * HOUR
        )

    assert list(found) == ["primary"]
    assert [(o.person, o.created_by, o.id) for o in found["primary"]] == [
        ("bob", "alice", first.id),
        ("carol", "bob", later.id),
    ]
    assert found["primary"][0].start == T0


async def test_a_deleted_override_no_longer_counts(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        made = await oncall_overrides.add(connection, "primary", "bob", T0, T0 + HOUR, "alice", T0)
        assert made.id is not None
        wrong_schedule = await oncall_overrides.delete(
            connection, "secondary", made.id, "alice", T0
        )
        deleted = await oncall_overrides.delete(connection, "primary", made.id, "alice", T0)
        again = await oncall_overrides.delete(connection, "primary", made.id, "alice", T0)
        live = await oncall_overrides.current_and_future(connection, "primary", T0)
        kept = await connection.fetchval(
            "SELECT deleted_by FROM oncall_overrides WHERE id = $1", made.id
        )

    assert (wrong_schedule, deleted, again) == (False, True, False)
    assert live == []
    assert kept == "alice"


async def test_ended_overrides_are_not_listed(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        await oncall_overrides.add(connection, "primary", "bob", T0, T0 + HOUR, "alice", T0)
        upcoming = await oncall_overrides.add(
            connection, "primary", "carol", T0 + 3 * HOUR, T0 + 4 * HOUR, "alice", T0
        )

        listed = await oncall_overrides.current_and_future(connection, "primary", T0 + 2 * HOUR)

    assert listed == [upcoming]
