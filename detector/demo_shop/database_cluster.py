"""The database cluster behind the shop's pool, as Patroni reports it: two members, one primary.

The failover-stuck fault takes the primary away and promotes nobody: writes fail and nobody
holds the leader lock. Clearing it completes the failover: the other member becomes primary on a
new timeline, as a real promotion does.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPE = "shop-db"
MEMBERS = ("shop-db-1", "shop-db-2")


@dataclass
class DatabaseCluster:
    """Which member is primary (None while a failover is stuck) and the current timeline."""

    primary: str | None = MEMBERS[0]
    timeline: int = 1

    @property
    def writable(self) -> bool:
        """Whether writes have somewhere to go."""
        return self.primary is not None

    def lose_primary(self) -> None:
        """The primary fails and the failover does not complete."""
        self.primary = None

    def complete_failover(self) -> None:
        """Promote the member that was not primary last (timeline + 1)."""
        if self.primary is None:
            self.primary = MEMBERS[self.timeline % len(MEMBERS)]
            self.timeline += 1
