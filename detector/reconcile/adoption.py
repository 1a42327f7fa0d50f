"""Adopting firing alerts that a rule routes only since they arrived.

A firing alert stored while no rule routed it is flagged unmatched, and its resends write
nothing; Alertmanager resends an unchanged group only every ``repeat_interval`` (4 h by
default). So a rule added during an incident would see its alert hours later. The reconciler
therefore hands the engine every stored unmatched alert that a rule routes now and that
Alertmanager still lists as firing, unmuted, under the same startsAt.

Only alerts that reached the service by webhook are adopted, so Alertmanager's routing still
decides what the service sees, and a silenced or inhibited alert waits, as its notifications do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from detector.domain.model import Signal
from detector.reconcile.alertmanager_api import Snapshot, api_precision
from detector.store import signals as inbox
from detector.store.connection import Connection
from detector.store.signals import PendingSignal


def to_adopt(
    strays: Sequence[PendingSignal],
    listed: Mapping[str, datetime],
    routed: Callable[[Signal], bool],
) -> list[int]:
    """The stored unmatched signals to hand to the engine: the same occurrence is still listed
    (a later startsAt there is a new occurrence) and a rule routes it now."""
    return [
        stray.id
        for stray in strays
        if (listed_start := listed.get(stray.signal.fingerprint)) is not None
        and api_precision(listed_start) == api_precision(stray.signal.starts_at)
        and routed(stray.signal)
    ]


async def adopt_strays(
    connection: Connection, snapshot: Snapshot, routed: Callable[[Signal], bool]
) -> int:
    """Unflag and queue the strays Alertmanager confirms and a rule routes; how many."""
    unmuted = [fingerprint for fingerprint in snapshot.listed if fingerprint not in snapshot.muted]
    adopted = to_adopt(await inbox.lock_strays(connection, unmuted), snapshot.listed, routed)
    await inbox.adopt(connection, adopted)
    return len(adopted)
