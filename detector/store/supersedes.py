"""Supersessions: which open incident of a superseding rule holds back which incidents of the
rules it supersedes. The decision is ``domain.superseding``; a link and its timeline lines are
written in the transaction of the decision that found it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from detector.domain.superseding import Party, link_entries
from detector.store.connection import Connection
from detector.store.timeline import add_timeline


async def open_of_rules(connection: Connection, rules: Sequence[str]) -> list[Party]:
    """The open incidents of ``rules``, oldest first (a scan of the open-incident index)."""
    if not rules:
        return []
    rows = await connection.fetch(
        """SELECT id, rule, title, group_labels FROM incidents
           WHERE rule = ANY($1::text[]) AND state <> 'resolved'
           ORDER BY id""",
        list(rules),
    )
    return [Party(r["id"], r["rule"], r["title"], r["group_labels"]) for r in rows]


async def link(
    connection: Connection, pairs: Sequence[tuple[Party, Party]], now: datetime
) -> list[tuple[Party, Party]]:
    """Record each (superseding, superseded) pair; a new one gets a timeline line on both
    incidents. Returns the new pairs (a pair linked before stays as it was)."""
    if not pairs:
        return []
    rows = await connection.fetch(
        """INSERT INTO supersedes (superseding_id, superseded_id, linked_at)
           SELECT above, below, $3 FROM unnest($1::bigint[], $2::bigint[]) AS p(above, below)
           ON CONFLICT DO NOTHING
           RETURNING superseding_id, superseded_id""",
        [above.id for above, _ in pairs],
        [below.id for _, below in pairs],
        now,
    )
    inserted = {(row["superseding_id"], row["superseded_id"]) for row in rows}
    new = [(above, below) for above, below in pairs if (above.id, below.id) in inserted]
    for above, below in new:
        for incident_id, entry in link_entries(above, below, now):
            await add_timeline(
                connection, incident_id, [(entry.kind, entry.at, dict(entry.detail))]
            )
    return new


async def covered_open(connection: Connection, superseding_id: int) -> list[int]:
    """The incidents ``superseding_id`` holds back that are still open."""
    rows = await connection.fetch(
        """SELECT s.superseded_id FROM supersedes s
           JOIN incidents i ON i.id = s.superseded_id AND i.state <> 'resolved'
           WHERE s.superseding_id = $1
           ORDER BY s.superseded_id""",
        superseding_id,
    )
    return [row["superseded_id"] for row in rows]


async def links_of(connection: Connection, incident_id: int) -> dict[str, list[int]]:
    """The incidents one supersedes and those superseding it, as the API shows them."""
    rows = await connection.fetch(
        """SELECT superseding_id, superseded_id FROM supersedes
           WHERE superseding_id = $1 OR superseded_id = $1
           ORDER BY superseding_id, superseded_id""",
        incident_id,
    )
    return {
        "supersedes": [r["superseded_id"] for r in rows if r["superseding_id"] == incident_id],
        "superseded_by": [r["superseding_id"] for r in rows if r["superseded_id"] == incident_id],
    }
