"""Durable rule-condition state per (rule, group); the check timers that revisit it are
scheduled through :mod:`detector.store.timers` in the same transaction.

A group's state is a small summary row (``conditions``: the tally and the condition's own
fields) and one row per waiting alert (``condition_members``). A batch reads the members its
condition needs (``members``) and writes only what changed (``save``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detector.domain.model import Signal
from detector.ruleset.conditions import Outcome, State
from detector.ruleset.rules import RuleMatch
from detector.ruleset.waiting import Member, Need, Part, dump_signal, load_signal
from detector.store import timers
from detector.store.connection import Connection


@dataclass(frozen=True, slots=True)
class StoredCondition:
    """A group's condition state as last saved; ``check_at`` is the one live check timer."""

    state: State = field(default_factory=dict)
    """The summary: everything but the members."""
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
    await connection.execute(
        "DELETE FROM condition_members WHERE rule = $1 AND group_key = $2", rule, group_key
    )


_MEMBER_COLUMNS = "seq, key, at, value, signal"

_NEEDED = f"""
    SELECT DISTINCT ON (seq) {_MEMBER_COLUMNS} FROM (
        SELECT {_MEMBER_COLUMNS} FROM condition_members
        WHERE rule = $1 AND group_key = $2 AND key = ANY($3::text[])
      UNION ALL
        (SELECT {_MEMBER_COLUMNS} FROM condition_members WHERE rule = $1 AND group_key = $2
         ORDER BY at, seq LIMIT $4)
      UNION ALL
        SELECT {_MEMBER_COLUMNS} FROM condition_members
        WHERE rule = $1 AND group_key = $2 AND at <= $5) AS needed
    ORDER BY seq"""
"""The members a ``Need`` names, each part an index range scan (by key, the earliest by
arrival, those that arrived by a time) that reads only its own rows: joined back to the table
by ``seq`` instead, a generic plan merge-joined the group's every member."""


async def _custom_planned(connection: Connection, query: str, *args: Any) -> list[Any]:
    """Run a lookup by a list of member keys with a plan made for these arguments.

    A prepared statement's generic plan is made once, often while a storm's group is still
    small, and then kept: it found the keys by reading every member of the group and comparing
    each with every key (a 20,000-member group took 100-400 ms per batch). Planned for the
    actual keys, on statistics kept current (``store.statistics``), it uses the key index; on
    stale ones it at least hashes the keys. Call inside a transaction.
    """
    await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    rows: list[Any] = await connection.fetch(query, *args)
    await connection.execute("RESET plan_cache_mode")
    return rows


async def members(connection: Connection, rule: str, group_key: str, need: Need) -> list[Member]:
    """The group's members ``need`` asks for, in arrival order."""
    if need.everything:
        rows = await connection.fetch(
            f"SELECT {_MEMBER_COLUMNS} FROM condition_members"
            " WHERE rule = $1 AND group_key = $2 ORDER BY seq",
            rule,
            group_key,
        )
    elif need.keys or need.earliest or need.until is not None:
        rows = await _custom_planned(
            connection, _NEEDED, rule, group_key, sorted(need.keys), need.earliest, need.until
        )
    else:
        return []
    return [_member(row) for row in rows]


def _member(row: Any) -> Member:
    return Member(row["key"], row["at"], load_signal(row["signal"]), row["value"])


async def kept_waiting(
    connection: Connection, rule: str, group_key: str, stored: StoredCondition
) -> list[Signal]:
    """The firing alerts the group's condition keeps waiting (``for``, ``absent``, ``all_of``):
    what must join the incident at once if the rule loses its condition."""
    tally = stored.state.get("tally", {})
    if tally.get("part") != Part.PENDING:
        return []
    return [
        member.signal
        for member in await members(connection, rule, group_key, Need(everything=True))
    ]


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
    match: RuleMatch,
    previous: StoredCondition,
    outcome: Outcome,
    now: datetime,
) -> list[Member]:
    """Store what ``outcome`` changed; schedule a check timer when the check time changed.
    Returns the stored members a release takes out (in arrival order), for the decision."""
    rule, group_key = match.rule.name, match.group_key
    taken = await _apply_change(connection, rule, group_key, outcome)
    if not outcome.summary and outcome.check_at is None:
        if previous.state or previous.check_at is not None:
            await connection.execute(
                "DELETE FROM conditions WHERE rule = $1 AND group_key = $2", rule, group_key
            )
        return taken
    await connection.execute(
        """INSERT INTO conditions (rule, group_key, group_labels, state, check_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (rule, group_key) DO UPDATE
             SET state = EXCLUDED.state, check_at = EXCLUDED.check_at,
                 updated_at = EXCLUDED.updated_at""",
        rule,
        group_key,
        dict(match.group_labels),
        outcome.summary,
        outcome.check_at,
        now,
    )
    if outcome.check_at is not None and outcome.check_at != previous.check_at:
        await timers.add_condition_checks(connection, [(rule, group_key)], outcome.check_at)
    return taken


async def _apply_change(
    connection: Connection, rule: str, group_key: str, outcome: Outcome
) -> list[Member]:
    change = outcome.change
    taken: list[Member] = []
    if change.cleared and outcome.release_waiting:
        rows = await connection.fetch(
            f"DELETE FROM condition_members WHERE rule = $1 AND group_key = $2"
            f" RETURNING {_MEMBER_COLUMNS}",
            rule,
            group_key,
        )
        taken = [_member(row) for row in sorted(rows, key=lambda row: row["seq"])]
    elif change.cleared:
        await connection.execute(
            "DELETE FROM condition_members WHERE rule = $1 AND group_key = $2", rule, group_key
        )
    elif change.removed:
        await _custom_planned(
            connection,
            "DELETE FROM condition_members"
            " WHERE rule = $1 AND group_key = $2 AND key = ANY($3::text[])",
            rule,
            group_key,
            sorted(change.removed),
        )
    if change.added:
        await connection.execute(
            """INSERT INTO condition_members (rule, group_key, key, at, value, signal)
               SELECT $1, $2, m.key, m.at, m.value, m.signal
               FROM ROWS FROM (unnest($3::text[]), unnest($4::timestamptz[]),
                               unnest($5::text[]), json_array_elements($6::json))
                 WITH ORDINALITY AS m (key, at, value, signal, n)
               ORDER BY m.n""",
            rule,
            group_key,
            [member.key for member in change.added],
            [member.at for member in change.added],
            [member.value for member in change.added],
            [dump_signal(member.signal) for member in change.added],
        )
    return taken


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
