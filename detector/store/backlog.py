"""Group backlogs: the signals of a rule group that got more than its share of one engine cycle,
waiting in arrival order (signal id) for the group's next slice while other groups go ahead.

Only the signal stage reads and writes them, inside the transaction that holds the
signal-processing lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from detector.store.connection import Connection
from detector.store.signals import (
    SIGNAL_COLUMNS,
    PendingSignal,
    holders,
    holders_sql,
    signal_from_row,
)

GroupKey = tuple[str, str]
"""(rule, group key)."""


@dataclass(frozen=True, slots=True)
class Lane:
    """The oldest waiting signals of one group's backlog; ``next_id`` is the signal after them
    when more wait (None when these are all)."""

    rule: str
    group_key: str
    signals: list[PendingSignal] = field(default_factory=list)
    next_id: int | None = None


_TAKE = f"""
    WITH RECURSIVE lanes AS (
        (SELECT rule, group_key FROM group_backlog ORDER BY rule, group_key LIMIT 1)
      UNION ALL
        SELECT later.rule, later.group_key FROM lanes l CROSS JOIN LATERAL (
          SELECT b.rule, b.group_key FROM group_backlog b
          WHERE (b.rule, b.group_key) > (l.rule, l.group_key)
          ORDER BY b.rule, b.group_key LIMIT 1) later)
    SELECT l.rule AS lane_rule, l.group_key AS lane_key, {SIGNAL_COLUMNS},
           {holders_sql("s", "$2")} AS holders
    FROM lanes l CROSS JOIN LATERAL (
      SELECT b.signal_id FROM group_backlog b
      WHERE b.rule = l.rule AND b.group_key = l.group_key
      ORDER BY b.signal_id LIMIT $1) first
    JOIN signals s ON s.id = first.signal_id
    ORDER BY l.rule, l.group_key, s.id"""
"""The first $1 signals of every backlog (a skip scan over the groups: one probe per group,
however many signals wait), with the open incidents of live rules ($2) holding them."""


async def take(connection: Connection, per_group: int, live_rules: Sequence[str]) -> list[Lane]:
    """The oldest ``per_group`` waiting signals of every group with a backlog (one more is
    read to tell whether more wait)."""
    rows = await connection.fetch(_TAKE, per_group + 1, list(live_rules))
    lanes: dict[GroupKey, list[PendingSignal]] = {}
    for row in rows:
        lanes.setdefault((row["lane_rule"], row["lane_key"]), []).append(
            PendingSignal(row["id"], signal_from_row(row), holders(row["holders"]))
        )
    return [
        Lane(rule, key, items[:per_group], items[per_group].id if len(items) > per_group else None)
        for (rule, key), items in lanes.items()
    ]


async def rules(connection: Connection) -> frozenset[str]:
    """The rules with a group whose backlog holds signals (a skip scan: one probe per rule)."""
    rows = await connection.fetch(
        """WITH RECURSIVE waiting AS (
               (SELECT rule FROM group_backlog ORDER BY rule LIMIT 1)
             UNION ALL
               SELECT later.rule FROM waiting w CROSS JOIN LATERAL (
                 SELECT b.rule FROM group_backlog b WHERE b.rule > w.rule
                 ORDER BY b.rule LIMIT 1) later)
           SELECT rule FROM waiting"""
    )
    return frozenset(row["rule"] for row in rows)


async def carry(connection: Connection, items: Sequence[tuple[GroupKey, int]]) -> None:
    """Put signals in their groups' backlogs (a signal already there stays once)."""
    if items:
        await connection.execute(
            """INSERT INTO group_backlog (rule, group_key, signal_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
               ON CONFLICT DO NOTHING""",
            [rule for (rule, _), _ in items],
            [key for (_, key), _ in items],
            [signal_id for _, signal_id in items],
        )


async def done(connection: Connection, items: Sequence[tuple[GroupKey, int]]) -> None:
    """Take applied (or no longer routed) signals out of their backlogs."""
    if items:
        await connection.execute(
            """DELETE FROM group_backlog
               WHERE (rule, group_key, signal_id) IN (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))""",
            [rule for (rule, _), _ in items],
            [key for (_, key), _ in items],
            [signal_id for _, signal_id in items],
        )
