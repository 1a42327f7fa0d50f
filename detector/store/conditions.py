"""Durable rule-condition state per (rule, group); the check timers that revisit it are
scheduled through :mod:`detector.store.timers` in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detector.domain.model import Signal
from detector.ruleset.conditions import ConditionResult, State
from detector.store import timers
from detector.store.connection import Connection


@dataclass(frozen=True, slots=True)
class StoredCondition:
    """A group's condition state as last saved; ``check_at`` is the one live check timer."""

    state: State = field(default_factory=dict)
    group_labels: Mapping[str, str] = field(default_factory=dict)
    check_at: datetime | None = None


async def lock(connection: Connection, rule: str, group_key: str) -> StoredCondition:
    """Load a group's state (empty if none), locked until the transaction ends."""
    row = await connection.fetchrow(
        "SELECT state, group_labels, check_at FROM conditions"
        " WHERE rule = $1 AND group_key = $2 FOR UPDATE",
        rule,
        group_key,
    )
    if row is None:
        return StoredCondition()
    return StoredCondition(row["state"], row["group_labels"], row["check_at"])


async def forget(connection: Connection, rule: str, group_key: str) -> None:
    """Drop a group's condition state (its rule lost the condition, or is gone)."""
    await connection.execute(
        "DELETE FROM conditions WHERE rule = $1 AND group_key = $2", rule, group_key
    )


async def recheck_orphans(
    connection: Connection, conditioned_rules: Sequence[str], now: datetime
) -> int:
    """Make the state of every group whose rule has no condition any more (or is gone) due for
    a check now, which releases what it held or drops it (``timer_stage``); returns how many.
    Some conditions (all_of, threshold) never schedule a check of their own. Call inside a
    transaction, so the check times and their timers commit together."""
    orphans = await connection.fetch(
        """UPDATE conditions SET check_at = $1 WHERE NOT (rule = ANY($2::text[]))
           RETURNING rule, group_key""",
        now,
        list(conditioned_rules),
    )
    groups = [(row["rule"], row["group_key"]) for row in orphans]
    return await timers.add_condition_checks(connection, groups, now)


async def unresolved(connection: Connection, signals: Sequence[Signal]) -> list[Signal]:
    """The firing ``signals`` whose occurrence has no stored resolution (a condition forgets
    resolutions as they come, but one may have arrived while the rule had no condition)."""
    if not signals:
        return []
    rows = await connection.fetch(
        """SELECT fingerprint, starts_at FROM signals
           WHERE status = 'resolved' AND (fingerprint, starts_at) IN (
             SELECT * FROM unnest($1::text[], $2::timestamptz[]))""",
        [s.fingerprint for s in signals],
        [s.starts_at for s in signals],
    )
    resolved = {(row["fingerprint"], row["starts_at"]) for row in rows}
    return [s for s in signals if (s.fingerprint, s.starts_at) not in resolved]


async def save(
    connection: Connection,
    rule: str,
    group_key: str,
    group_labels: Mapping[str, str],
    previous: StoredCondition,
    result: ConditionResult,
    now: datetime,
) -> None:
    """Store the new state; schedule a check timer when the check time changed."""
    if not result.state and result.check_at is None:
        await forget(connection, rule, group_key)
        return
    await connection.execute(
        """INSERT INTO conditions (rule, group_key, group_labels, state, check_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (rule, group_key) DO UPDATE
             SET state = EXCLUDED.state, check_at = EXCLUDED.check_at,
                 updated_at = EXCLUDED.updated_at""",
        rule,
        group_key,
        dict(group_labels),
        result.state,
        result.check_at,
        now,
    )
    if result.check_at is not None and result.check_at != previous.check_at:
        await timers.add_condition_checks(connection, [(rule, group_key)], result.check_at)


async def last_seen(connection: Connection, fingerprints: list[str]) -> datetime | None:
    """When any of these alerts last arrived firing, replays included (heartbeats repeat
    unchanged); a resolved notification is not a heartbeat."""
    if not fingerprints:
        return None
    value: datetime | None = await connection.fetchval(
        "SELECT max(last_received_at) FROM signals"
        " WHERE fingerprint = ANY($1::text[]) AND status = 'firing'",
        fingerprints,
    )
    return value


def fingerprints(state: State) -> list[str]:
    """The alerts a heartbeat state watches."""
    watched: Any = state.get("fingerprints", [])
    return [str(value) for value in watched]
