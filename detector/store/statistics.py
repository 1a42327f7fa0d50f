"""Planner statistics for the tables an alert storm grows within seconds.

Autovacuum refreshes a table's statistics a minute or more after it changed. Until then the
planner sizes a rule group that grew from ten waiting alerts to twenty thousand as ten, and a
lookup of a batch's members by key reads the whole group instead of the key index. These tables
are analyzed as soon as they changed by more than they held when last counted, so a growing
group is re-planned a logarithmic number of times, not never.
"""

from __future__ import annotations

from detector.store.connection import Connection

GROWING = ("condition_members", "incident_alerts", "signals")
"""Tables that take a row (or more) per alert; the queues beside them empty again."""
MIN_CHANGED = 1000
"""Fewer changed rows than this never call for a count: plans only change with size."""


async def refresh(connection: Connection) -> list[str]:
    """Analyze the growing tables that changed since their last count by more than they held
    then; the tables analyzed. Cached plans that read them are planned afresh."""
    rows = await connection.fetch(
        """SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
           WHERE s.schemaname = current_schema() AND s.relname = ANY($1::text[])
             AND s.n_mod_since_analyze > greatest($2, c.reltuples)
           ORDER BY s.relname""",
        list(GROWING),
        MIN_CHANGED,
    )
    tables: list[str] = [row["relname"] for row in rows]
    for table in tables:  # one of GROWING, so safe to name in the statement
        await connection.execute(f"ANALYZE {table}")
    return tables
