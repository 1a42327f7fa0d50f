"""Engine stage 1: turn stored signals into incident decisions.

One replica at a time (a transaction-scoped advisory lock) so signals are applied in arrival
order; a batch of signals and all its decisions commit together.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

import structlog

from detector.domain.grouping import to_attached_incidents
from detector.domain.model import Decision, Signal, Source
from detector.domain.related import DEFAULT_WINDOW
from detector.engine import correlation
from detector.engine.stage import CycleContext, record_decisions
from detector.ruleset.rules import RuleMatch, RuleSet
from detector.service.metrics import Metrics
from detector.store import incidents as store
from detector.store import intake_log, locks
from detector.store import signals as inbox
from detector.store.connection import Connection, Pool, StatementError

log = structlog.get_logger(__name__)
QUICK_RETRIES = 3
FIRST_SLOW_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(minutes=5)

Correlate = Callable[
    [Connection, RuleSet, RuleMatch, Sequence[Signal], datetime], Awaitable[Decision | None]
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
    full: bool = False  # the batch limit was reached: more is probably waiting

    @property
    def processed(self) -> int:
        """Number of signals handled."""
        return sum(self.outcomes.values())

    @property
    def busy(self) -> bool:
        """True when intake log records or signals were handled."""
        stored = self.expansion.stored
        return bool(self.processed or stored.inserted or stored.duplicates)

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
        record_decisions(metrics, self.decisions)


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
    """``rules.route``, remembered per stored signal: a new signal is routed when it is stored
    (to flag it if unmatched) and again when it is grouped; the answer cannot differ."""
    seen: dict[inbox.SignalKey, list[RuleMatch]] = {}

    def route(signal: Signal) -> list[RuleMatch]:
        key = inbox.signal_key(signal)
        matches = seen.get(key)
        if matches is None:
            matches = seen[key] = rules.route(signal)
        return matches

    return route


def group_by_incident(
    pending: list[inbox.PendingSignal],
    route: Callable[[Signal], list[RuleMatch]],
    rules: RuleSet,
) -> tuple[dict[tuple[str, str], tuple[RuleMatch, list[Signal]]], dict[int, str]]:
    """Route each signal (to the incidents it is attached to, see ``to_attached_incidents``; a
    retry only to the rules it failed in); group the matched ones by (rule, group key), keep
    outcomes per id."""
    groups: dict[tuple[str, str], tuple[RuleMatch, list[Signal]]] = {}
    outcomes: dict[int, str] = {}
    for item in pending:
        matches = to_attached_incidents(route(item.signal), item.holders, rules)
        if item.retry_rules is None:
            outcomes[item.id] = SignalOutcome.MATCHED if matches else SignalOutcome.UNMATCHED
        else:  # a retry: the other rules that route it have it already
            outcomes[item.id] = SignalOutcome.MATCHED
            matches = [match for match in matches if match.rule.name in item.retry_rules]
        for match in matches:
            key = (match.rule.name, match.group_key)
            groups.setdefault(key, (match, []))[1].append(item.signal)
    return groups, outcomes


async def process_pending(
    pool: Pool,
    rules: RuleSet,
    now: datetime,
    limit: int = 500,
    *,
    correlate: Correlate | None = None,
    related_window: timedelta = DEFAULT_WINDOW,
) -> SignalBatchResult:
    """Process queued signals and the new ones from expanding intake log records (up to
    ``limit`` of each), oldest first, in one transaction.

    Nothing happens while another replica holds the lock. A group whose update fails is rolled
    back alone (a savepoint), and its signals are queued again for that group's rule
    (``retry_after``), so a failure never drops an alert: Alertmanager's resends of it are
    duplicates and would not bring it back. ``correlate`` applies each group; by default
    ``correlation.correlate``, linking the incidents it opens to those of their component
    opened within ``related_window``.
    """
    result = SignalBatchResult()
    apply_group = correlate or partial(correlation.correlate, related_window=related_window)
    async with pool.acquire() as connection, connection.transaction():
        if not await locks.try_hold(connection, locks.AdvisoryLock.SIGNAL_PROCESSING):
            return result
        live_rules = list(rules.rules)
        queued = await inbox.lock_pending(connection, limit, now, live_rules)
        route = routed_once(rules)
        result.expansion = await intake_log.expand(
            connection, limit, now, lambda signal: not route(signal), live_rules
        )
        stored = result.expansion.stored
        result.full = len(queued) >= limit or stored.inserted + stored.duplicates >= limit
        if stored.unmatched:
            result.outcomes[SignalOutcome.UNMATCHED] += stored.unmatched
        pending = queued + result.expansion.fresh
        if not pending:
            return result
        groups, outcomes = group_by_incident(pending, route, rules)
        failed: dict[int, set[str]] = {}  # id of a signal → rules whose group failed with it
        for (rule_name, group_key), (match, signals) in groups.items():
            try:
                async with connection.transaction():
                    decision = await apply_group(connection, rules, match, signals, now)
            except (StatementError, store.IncidentConflict, ValueError, KeyError):
                log.exception("signals.group_failed", rule=rule_name, group_key=group_key)
                in_group = {id(signal) for signal in signals}
                for item in pending:
                    if id(item.signal) in in_group:
                        outcomes[item.id] = SignalOutcome.ERROR
                        failed.setdefault(item.id, set()).add(rule_name)
                continue
            if decision is not None:
                result.decisions.append(decision)
        retries = [_retry(item, failed[item.id], now) for item in pending if item.id in failed]
        await inbox.mark_processed(connection, outcomes, [item.id for item in queued], retries)
        result.outcomes.update(outcomes.values())
    return result


def _retry(item: inbox.PendingSignal, rules: set[str], now: datetime) -> inbox.Retry:
    attempts = item.attempts + 1
    delay = retry_after(attempts)
    return inbox.Retry(item.id, attempts, frozenset(rules), None if delay is None else now + delay)


SignalProcessor = Callable[[Pool, RuleSet, datetime], Awaitable[SignalBatchResult]]
"""What the signal stage runs: :func:`process_pending` unless a test replica says otherwise."""


class SignalStage:
    """The cycle's signal stage: :func:`process_pending` with the rules in force."""

    name = "signals"

    def __init__(self, process: SignalProcessor = process_pending) -> None:
        self._process = process

    async def run(self, context: CycleContext) -> SignalBatchResult:
        """Process what is pending now."""
        return await self._process(context.pool, context.routes.rules, context.now)
