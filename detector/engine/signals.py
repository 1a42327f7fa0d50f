"""Engine stage 1: turn stored signals into incident decisions.

One replica at a time (a transaction-scoped advisory lock) so signals are applied in arrival
order; a batch of signals and all its decisions commit together. Each rule group applies at most
a slice of its signals a cycle (``slices``), the rest waiting in its backlog, so a storm in one
group never holds up another group's incident.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

import structlog

from detector.domain.model import Decision, Signal, Source
from detector.domain.related import DEFAULT_WINDOW
from detector.domain.superseding import decision_order
from detector.engine import correlation
from detector.engine.overtaking import PutOff, overtaking, reach_of, waiting
from detector.engine.slices import GroupSlice, Slicer
from detector.engine.stage import CycleContext, Lane, record_decisions
from detector.engine.timers import record_escalations
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.service.metrics import Metrics
from detector.store import backlog, intake_log, locks
from detector.store import incidents as store
from detector.store import signals as inbox
from detector.store.connection import Connection, Pool, StatementError

log = structlog.get_logger(__name__)
QUICK_RETRIES = 3
FIRST_SLOW_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(minutes=5)
GROUP_SLICE = 400
"""Signals one rule group applies per cycle at most; the rest wait in its backlog, in order."""
HEADS_READ = 2_000
"""Intake log records a quick pass looks at, oldest first, for ones that may go ahead."""
EXPANSION_REACH = 4
"""While a group is sliced, a cycle expands up to this many times its usual share of the intake
log, to reach the signals of other groups queued behind the storm."""

Correlate = Callable[
    [Connection, RuleSet, RuleMatch, Sequence[Signal], datetime],
    Awaitable[correlation.Correlated],
]
"""Applies one group's signals inside the caller's transaction (``correlation.correlate``)."""


class SignalOutcome(StrEnum):
    """What became of one stored signal: the ``outcome`` label of
    ``stormwatch_signals_processed_total``, and how the signals table flags it."""

    MATCHED = "matched"
    UNMATCHED = "unmatched"
    ERROR = "error"
    """Its group's update failed; it is queued again for that group's rule (``retry_after``)."""


@dataclass
class SignalBatchResult:
    """What one pass over pending signals did."""

    expansion: intake_log.Expansion = field(default_factory=intake_log.Expansion)
    outcomes: Tally[str] = field(default_factory=Tally)
    """Signals per :class:`SignalOutcome`."""
    decisions: list[Decision] = field(default_factory=list)
    behind: bool = False
    """The batch took all it may: more waits in the queue or the intake log."""
    sliced: bool = False
    """Some group has signals waiting in its backlog."""
    applied: int = 0
    """Signals applied to their groups (a signal in two groups counts twice)."""
    carried: int = 0
    """Signals put in a group's backlog for a later cycle."""
    put_off: int = 0
    """Groups left whole for a later cycle, because a quick pass waited (``PutOff``)."""
    dropped: Tally[tuple[str, str]] = field(default_factory=Tally)
    """Waiting alerts rule conditions dropped, by (rule, reason)."""
    storming: frozenset[str] = frozenset()
    """The rules with a group whose backlog still holds signals after the batch."""

    @property
    def processed(self) -> int:
        """Number of signals handled."""
        return sum(self.outcomes.values())

    @property
    def arrived(self) -> int:
        """Alerts new to the engine this cycle (stored, or known already), from the intake log."""
        stored = self.expansion.stored
        return stored.inserted + stored.duplicates

    @property
    def busy(self) -> bool:
        """True when intake log records or signals were handled."""
        return bool(self.processed or self.applied or self.arrived)

    def record(self, metrics: Metrics) -> None:
        """Count the alerts stored, the signals processed, the incidents opened and resolved,
        and the intake log records that could not be read (each set aside)."""
        stored = self.expansion.stored
        metrics.signals_received.labels(Source.ALERTMANAGER, "accepted").inc(stored.inserted)
        metrics.signals_received.labels(Source.ALERTMANAGER, "duplicate").inc(stored.duplicates)
        if self.expansion.unreadable:
            metrics.engine_errors.labels("intake_log").inc(self.expansion.unreadable)
        for outcome, count in self.outcomes.items():
            metrics.signals_processed.labels(outcome).inc(count)
        for (rule, reason), count in self.dropped.items():
            metrics.condition_dropped.labels(rule, reason).inc(count)
        record_decisions(metrics, self.decisions)
        record_escalations(metrics, self.decisions)


def retry_after(attempts: int) -> timedelta | None:
    """How long a signal whose group failed waits after ``attempts`` failed tries.

    Not at all for the first few: a deadlock or a conflict with another replica clears at once,
    and a retry in the next cycle keeps the group's signals in arrival order. Then doubling from
    5 s up to 5 min, so a group that keeps failing (a bug) costs a try every few minutes.
    """
    if attempts <= QUICK_RETRIES:
        return None
    doublings = min(attempts - QUICK_RETRIES - 1, 16)
    return min(FIRST_SLOW_RETRY * (1 << doublings), LONGEST_RETRY)


def routed_once(rules: RuleSet) -> Callable[[Signal], list[RuleMatch]]:
    """``rules.route``, remembered per stored signal (``RuleSet.route_once``): a new signal is
    routed when it is stored (to flag it if unmatched), again when it is grouped, and again
    each time its group's backlog gives it a turn; the answer cannot differ."""

    def route(signal: Signal) -> list[RuleMatch]:
        return rules.route_once(inbox.signal_key(signal), signal)

    return route


async def process_pending(
    pool: Pool,
    rules: RuleSet,
    now: datetime,
    limit: int = 500,
    *,
    correlate: Correlate | None = None,
    related_window: timedelta = DEFAULT_WINDOW,
    group_slice: int = GROUP_SLICE,
    ahead: bool = False,
    hurry: Callable[[], bool] | None = None,
) -> SignalBatchResult:
    """Process what waits in group backlogs, queued signals and the new ones from expanding
    intake log records (about ``limit`` of each), oldest first, in one transaction; each group
    applies at most ``group_slice`` of them, the rest wait in its backlog. ``ahead``: a quick
    pass while a storm is paced, taking only the records that may overtake older ones
    (``overtaking``); ``hurry``: such records wait, so reach no further into the storm, and
    leave the storm's groups not applied yet for a later cycle (``PutOff``).

    Nothing happens while another replica holds the lock. A group whose update fails is rolled
    back alone (a savepoint) and its signals queued again for its rule (``retry_after``), as
    Alertmanager's resends would be duplicates. ``correlate`` applies each group (by default
    ``correlation.correlate``, linking incidents of a component within ``related_window``).
    """
    result = SignalBatchResult()
    apply_group = correlate or partial(correlation.correlate, related_window=related_window)
    async with pool.acquire() as connection, connection.transaction():
        if not await locks.try_hold(connection, locks.AdvisoryLock.SIGNAL_PROCESSING):
            return result
        batch = await _take_in(connection, rules, now, limit, group_slice, ahead, hurry)
        if batch is None:
            return result
        slicer, queued, result.expansion = batch.slicer, batch.queued, batch.expansion
        stored = result.expansion.stored
        result.behind = len(queued) >= limit or result.arrived >= limit
        if stored.unmatched:
            result.outcomes[SignalOutcome.UNMATCHED] += stored.unmatched
        outcomes: dict[int, str] = {
            signal_id: SignalOutcome.MATCHED if routed else SignalOutcome.UNMATCHED
            for signal_id, routed in batch.matched.items()
        }
        carried, finished, failed = await _apply_all(
            connection, rules, slicer, now, apply_group, result, outcomes, hurry
        )
        await backlog.done(connection, finished)
        await backlog.carry(connection, carried)
        retries = [_retry(item, failed_rules, now) for item, failed_rules in failed.values()]
        await inbox.mark_processed(connection, outcomes, [item.id for item in queued], retries)
        result.outcomes.update(outcomes.values())
        result.carried = len(carried)
        result.sliced = slicer.sliced
        result.storming = frozenset(rule for (rule, _), _ in carried) | slicer.backlogged
    return result


Failed = dict[int, tuple[inbox.PendingSignal, set[str]]]
"""Signals whose group update failed, by id, with the rules it failed in."""


async def _apply_all(
    connection: Connection,
    rules: RuleSet,
    slicer: Slicer,
    now: datetime,
    apply_group: Correlate,
    result: SignalBatchResult,
    outcomes: dict[int, str],
    hurry: Callable[[], bool] | None,
) -> tuple[list[tuple[backlog.GroupKey, int]], list[tuple[backlog.GroupKey, int]], Failed]:
    """Apply every group's slice, superseding rules first (their symptoms never page); once
    ``hurry``, put off the rest of the storm's groups (``PutOff``). What goes to the backlogs,
    what leaves them, and what failed."""
    failed: Failed = {}
    carried: list[tuple[backlog.GroupKey, int]] = []
    finished = list(slicer.stale)
    put_off: PutOff | None = None
    waits = 0
    order = decision_order(rules)
    for piece in sorted(slicer.slices(), key=lambda piece: order.get(piece.key[0], 0)):
        if put_off is None and hurry is not None and hurry():
            put_off = PutOff(rules, slicer.backlogged | {key[0] for key, _ in carried})
        if put_off is not None and put_off.wants(piece):
            later = waiting(piece)
            carried += later
            result.put_off += 1
            waits += len(later)
            continue
        carried += [(piece.key, signal_id) for signal_id in piece.carry]
        finished += piece.done
        if not await _apply(connection, rules, piece, now, apply_group, result):
            for item in piece.apply:
                outcomes[item.id] = SignalOutcome.ERROR
                failed.setdefault(item.id, (item, set()))[1].add(piece.key[0])
    if result.put_off:
        log.info("signals.groups_put_off", groups=result.put_off, signals=waits)
    return carried, finished, failed


@dataclass
class _Batch:
    """A cycle's signals, by group, and where they came from."""

    slicer: Slicer
    queued: list[inbox.PendingSignal]
    matched: dict[int, bool]
    """Whether a rule routes each new or queued signal, by id."""
    expansion: intake_log.Expansion


async def _take_in(
    connection: Connection,
    rules: RuleSet,
    now: datetime,
    limit: int,
    group_slice: int,
    ahead: bool,
    hurry: Callable[[], bool] | None,
) -> _Batch | None:
    """Gather the cycle's signals (``process_pending``); None for a quick pass while a queued
    signal is due, since it may be older than anything the pass would take."""
    live_rules = list(rules.rules)
    route = routed_once(rules)
    if ahead:
        if await inbox.lock_pending(connection, 1, now, live_rules):
            return None
        batch = _Batch(Slicer(rules, route, group_slice, []), [], {}, intake_log.Expansion())
        batch.expansion = await _expand_ahead(connection, batch, limit, now, rules)
        return batch
    lanes = await backlog.take(connection, group_slice, live_rules)
    slicer = Slicer(rules, route, group_slice, lanes)
    queued = await inbox.lock_pending(connection, limit, now, live_rules)
    batch = _Batch(slicer, queued, slicer.add(queued), intake_log.Expansion())
    batch.expansion = await _expand(
        connection, slicer, batch.matched, limit, now, live_rules, hurry
    )
    return batch


async def _expand(
    connection: Connection,
    slicer: Slicer,
    matched: dict[int, bool],
    limit: int,
    now: datetime,
    live_rules: list[str],
    hurry: Callable[[], bool] | None,
) -> intake_log.Expansion:
    """Expand about ``limit`` alerts of the intake log into signals for ``slicer``; while some
    group has more than its slice, go on (up to ``EXPANSION_REACH`` times as far, unless
    ``hurry``): the storm waits in its backlog anyway, and other groups' signals behind it get
    their turn now."""
    total = intake_log.Expansion()
    while True:
        step = await intake_log.expand(connection, limit, now, slicer.routes_nowhere, live_rules)
        matched.update(slicer.add(step.fresh))
        total = intake_log.Expansion(
            total.stored + step.stored, total.fresh + step.fresh, total.unreadable + step.unreadable
        )
        expanded = total.stored.inserted + total.stored.duplicates + total.unreadable
        if (
            step == intake_log.Expansion()
            or not slicer.sliced
            or expanded >= EXPANSION_REACH * limit
            or (hurry is not None and hurry())
        ):
            return total


async def _expand_ahead(
    connection: Connection, batch: _Batch, limit: int, now: datetime, rules: RuleSet
) -> intake_log.Expansion:
    """Expand the intake log records that may go ahead of older ones, for ``batch``."""
    storming = await backlog.rules(connection)
    heads = await intake_log.heads(connection, HEADS_READ)
    ids = overtaking(heads, storming, reach_of(rules), limit)
    if not ids:
        return intake_log.Expansion()
    log.info("signals.went_ahead", records=len(ids), storming=sorted(storming))
    slicer = batch.slicer
    step = await intake_log.expand(
        connection, limit, now, slicer.routes_nowhere, list(rules.rules), only=ids
    )
    batch.matched.update(slicer.add(step.fresh))
    return step


async def _apply(
    connection: Connection,
    rules: RuleSet,
    piece: GroupSlice,
    now: datetime,
    correlate: Correlate,
    result: SignalBatchResult,
) -> bool:
    """Apply one group's slice in a savepoint; False if it failed (rolled back alone)."""
    rule, group_key = piece.key
    if piece.carry:
        log.info(
            "signals.group_sliced",
            rule=rule,
            group_key=group_key,
            applied=len(piece.apply),
            carried=len(piece.carry),
        )
    if not piece.apply:
        return True
    try:
        async with connection.transaction():
            applied = await correlate(
                connection, rules, piece.match, [p.signal for p in piece.apply], now
            )
    except (StatementError, store.IncidentConflict, ValueError, KeyError):
        log.exception("signals.group_failed", rule=rule, group_key=group_key)
        return False
    result.applied += len(piece.apply)
    if applied.decision is not None:
        result.decisions.append(applied.decision)
    for reason, count in applied.dropped.items():
        result.dropped[(rule, str(reason))] += count
    return True


def _retry(item: inbox.PendingSignal, rules: set[str], now: datetime) -> inbox.Retry:
    attempts = item.attempts + 1
    delay = retry_after(attempts)
    return inbox.Retry(item.id, attempts, frozenset(rules), None if delay is None else now + delay)


SignalProcessor = Callable[[Pool, RuleSet, datetime], Awaitable[SignalBatchResult]]
"""What the signal stage runs: :func:`process_pending` unless a test replica says otherwise."""


class SignalStage:
    """The cycle's signal stage: :func:`process_pending` with the rules in force."""

    name = "signals"
    lane = Lane.DETECT

    def __init__(
        self,
        process: SignalProcessor = process_pending,
        ahead: SignalProcessor | None = None,
    ) -> None:
        self._process = process
        self._ahead = ahead or partial(process_pending, ahead=True)

    async def run(self, context: CycleContext) -> SignalBatchResult:
        """Process what is pending now (in a quick pass, only what may go ahead)."""
        process = self._ahead if context.ahead else self._process
        return await process(context.pool, context.routes.rules, context.now)
