"""``store.lock_group`` picks a group's incident in SQL by the rule ``current_incident`` states in
Python: fed the same incidents, both must pick the same one, or the engine and
``stormwatch rules test`` would reopen (or open anew) differently."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest

from detector.domain.grouping import current_incident
from detector.domain.model import Incident, IncidentState
from detector.store import incidents as store
from tests.unit.test_grouping import CURRENT_INCIDENT_CASES, GROUP_KEY, T0, incident

RULE = "pool-exhausted"
OTHER_GROUP = replace(incident(99, IncidentState.TRIGGERED), group_key='{cluster="us-1"}')
"""Open, and newer than anything in the group: ``lock_group`` must not look past the group."""


async def _picked_by_sql(pool: asyncpg.Pool, incidents: Sequence[Incident]) -> int | None:
    """Store the incidents, let ``lock_group`` pick, and roll everything back."""
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.executemany(
                """INSERT INTO incidents (id, rule, group_key, group_labels, state, severity,
                     title, summary, opened_at, last_signal_at, resolved_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, '', $8, $8, $9, $8)""",
                [
                    (
                        i.id,
                        i.rule,
                        i.group_key,
                        dict(i.group_labels),
                        i.state.value,
                        i.severity.value,
                        i.title,
                        i.opened_at,
                        i.resolved_at,
                    )
                    for i in (*incidents, OTHER_GROUP)
                ],
            )
            picked = await store.lock_group(connection, RULE, GROUP_KEY)
        finally:
            await transaction.rollback()
    return None if picked is None else picked.id


def _random_group(rng: random.Random) -> list[Incident]:
    """Up to six resolved incidents (resolution times drawn from a few, some missing, so ties
    happen) and perhaps one open, with ids in any order."""
    count = rng.randint(0, 6)
    ids = rng.sample(range(1, 50), count + 1)
    times = [None, T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    group = [incident(ids[n], IncidentState.RESOLVED, rng.choice(times)) for n in range(count)]
    if rng.random() < 0.4:
        state = rng.choice([IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED])
        group.append(incident(ids[count], state))
    rng.shuffle(group)
    return group


class TestSameRuleAsLockGroup:
    @pytest.mark.parametrize(("candidates", "expected"), CURRENT_INCIDENT_CASES)
    async def test_table(
        self, pool: asyncpg.Pool, candidates: list[Incident], expected: int | None
    ) -> None:
        assert await _picked_by_sql(pool, candidates) == expected

    async def test_random_groups(self, pool: asyncpg.Pool) -> None:
        rng = random.Random(20261127)
        for _ in range(200):
            group = _random_group(rng)
            in_python = current_incident(group)

            in_sql = await _picked_by_sql(pool, group)

            assert in_sql == (in_python.id if in_python else None), group
