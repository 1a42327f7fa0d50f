"""Every PostgreSQL advisory lock the service takes, so no two jobs ever share an id by chance.

All are transaction-scoped: released at commit or rollback, never left behind by a crashed
replica. Ids start with 0x5707 ("stormwatch") to keep clear of other users of the database.
"""

from __future__ import annotations

from enum import IntEnum

from detector.store.connection import Connection


class AdvisoryLock(IntEnum):
    """The lock ids, each naming what it serialises."""

    # Applying migrations: replicas starting together apply each migration once, in order.
    MIGRATIONS = 0x5707_3A7C
    # The engine's signal stage: one replica at a time expands the intake log and applies
    # pending signals, so the alerts of a group apply in arrival order.
    SIGNAL_PROCESSING = 0x5707_5160
    # Reconciliation with Alertmanager: one replica at a time compares what open incidents
    # hold with Alertmanager's list and adopts stray alerts.
    RECONCILIATION = 0x5707_2EC0
    # Storm bundling, per person (taken with ``hold_keyed``, the person's id as the key): one
    # replica at a time decides which of a person's pages go out one by one and which are
    # bundled, so two replicas never both send a person's allowance.
    PAGE_BUNDLING = 0x5707_B0D1


async def hold(connection: Connection, lock: AdvisoryLock) -> None:
    """Wait for ``lock`` and hold it until the transaction ends."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", int(lock))


async def try_hold(connection: Connection, lock: AdvisoryLock) -> bool:
    """Take ``lock`` until the transaction ends if it is free; False if another holds it."""
    taken: bool = await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", int(lock))
    return taken


async def hold_keyed(connection: Connection, lock: AdvisoryLock, key: str) -> None:
    """Wait for ``lock`` on ``key`` alone (two 32-bit keys: the lock's id and a hash of ``key``,
    a space apart from the single-key locks above) and hold it until the transaction ends."""
    await connection.execute(
        "SELECT pg_advisory_xact_lock($1::integer, hashtext($2))", int(lock), key
    )
