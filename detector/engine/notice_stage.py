"""Engine stage: fire the notice timers (publish, remind, hold, quiet), each exactly once.

Each timer fires in its own transaction under the incident's row lock, claimed with ``FOR UPDATE
SKIP LOCKED`` and a lease like every timer, so a restart or a second replica never skips or
doubles a notice. A reminder or holding update whose promise a later update replaced is stale
and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import structlog

from detector.domain.model import Incident, Timer, TimerKind, TimerSpec
from detector.engine import notice_fanout
from detector.engine.notices import PUBLISH_AT_ONCE
from detector.engine.public_notices import (
    first_notice,
    promised,
    publish_first,
    publish_update,
)
from detector.engine.stage import CycleContext, Lane
from detector.ruleset.rules import RuleSet
from detector.service.metrics import Metrics
from detector.store import incidents as store
from detector.store import notice_drafts, outbox, public_incidents, timers
from detector.store.connection import Connection, Pool
from detector.store.timeline import add_timeline
from responders.messages import NoticeReminder
from responders.notices.cadence import Punctuality, reminded
from responders.notices.model import NoticeKind, PublishMode
from responders.statuspage.model import IncidentStatus, PageInfo, PublicIncident

log = structlog.get_logger(__name__)
LEASE = timedelta(seconds=60)
ROUNDS = 4


class NoticeOutcome(StrEnum):
    """What a notice timer did (the ``outcome`` stored on the timer)."""

    PUBLISHED = "published"
    JOINED = "joined"
    DRAFTED = "drafted"
    AWAITING_VETO = "awaiting_veto"
    VETOED = "vetoed"
    REMINDED = "reminded"
    HOLDING = "holding_update"
    SUPERSEDED = "superseded"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    KEPT_OPEN = "kept_open"
    FANNED_OUT = "fanned_out"
    NOTHING = "nothing"


ON_TIMELINE = frozenset(
    {
        NoticeOutcome.PUBLISHED,
        NoticeOutcome.JOINED,
        NoticeOutcome.DRAFTED,
        NoticeOutcome.AWAITING_VETO,
        NoticeOutcome.REMINDED,
        NoticeOutcome.HOLDING,
        NoticeOutcome.MONITORING,
        NoticeOutcome.RESOLVED,
    }
)
"""What the incident's timeline shows of its notice (not the fan-out's batches, nor timers that
found nothing to do)."""


@dataclass(frozen=True, slots=True)
class FiredNotice:
    """One notice timer that fired; ``first_after`` is the open-to-first-notice delay when it
    published a first notice, ``punctuality`` set when it published an update."""

    timer: Timer | None
    """None when a person published a draft."""
    outcome: NoticeOutcome
    first_after: timedelta | None = None
    punctuality: Punctuality | None = None
    queued: int = 0
    """Subscriber messages a fan-out queued."""


@dataclass(frozen=True, slots=True)
class NoticeBatch:
    """The notice timers one pass fired, and how many failed (retried after their lease)."""

    fired: list[FiredNotice]
    failed: int = 0

    @property
    def busy(self) -> bool:
        """True when notice timers fired."""
        return bool(self.fired)

    def record(self, metrics: Metrics) -> None:
        """Count first-notice delays, holding updates, reminders and punctuality."""
        for fired in self.fired:
            if fired.first_after is not None:
                metrics.notice_first_seconds.observe(max(fired.first_after.total_seconds(), 0))
            if fired.punctuality is not None:
                metrics.notice_updates.labels(fired.punctuality).inc()
            if fired.outcome is NoticeOutcome.HOLDING:
                metrics.notice_holding_updates.inc()
            if fired.outcome is NoticeOutcome.REMINDED:
                metrics.notice_reminders.inc()
        if self.failed:
            metrics.engine_errors.labels(NoticeStage.name).inc(self.failed)


class _LeaseLost(Exception):
    """Another replica took the timer over; this transaction must not commit."""


async def fire_notices(
    pool: Pool, rules: RuleSet, page: PageInfo, owner: str, now: datetime, limit: int = 100
) -> NoticeBatch:
    """Claim due notice timers and fire each in its own transaction; timers those fired due
    at once (a publication's fan-out, its next batch) are claimed again, a few rounds at most,
    so subscribers hear in the same cycle."""
    fired: list[FiredNotice] = []
    failed = 0
    for _ in range(ROUNDS):
        batch = await _fire_round(pool, rules, page, owner, now, limit)
        fired.extend(batch.fired)
        failed += batch.failed
        if not batch.fired:
            break
    return NoticeBatch(fired, failed)


async def _fire_round(
    pool: Pool, rules: RuleSet, page: PageInfo, owner: str, now: datetime, limit: int
) -> NoticeBatch:
    async with pool.acquire() as connection:
        claimed = await timers.claim_due(connection, owner, now, LEASE, limit, notices=True)
    fired: list[FiredNotice] = []
    failed = 0
    for timer in claimed:
        try:
            result = await _fire_one(pool, rules, page, timer, owner, now)
        except _LeaseLost:
            continue
        except Exception:
            failed += 1
            log.exception("notice.timer_failed", timer=timer.id, kind=timer.kind)
            continue
        fired.append(result)
        log.info(
            "notice.fired", kind=timer.kind, outcome=result.outcome, incident=timer.incident_id
        )
    return NoticeBatch(fired, failed)


async def _fire_one(
    pool: Pool, rules: RuleSet, page: PageInfo, timer: Timer, owner: str, now: datetime
) -> FiredNotice:
    async with pool.acquire() as connection, connection.transaction():
        result = await _fire(connection, rules, page, timer, now)
        if not await timers.mark_fired(connection, timer.id, owner, result.outcome, now):
            raise _LeaseLost
        if result.outcome in ON_TIMELINE and timer.incident_id is not None:
            entry = (f"notice.{result.outcome}", now, {"timer": timer.kind.value})
            await add_timeline(connection, timer.incident_id, [entry])
    return result


async def _fire(
    connection: Connection, rules: RuleSet, page: PageInfo, timer: Timer, now: datetime
) -> FiredNotice:
    incident_id = timer.incident_id
    incident = None if incident_id is None else await store.lock_incident(connection, incident_id)
    if incident is None or incident_id is None:
        return FiredNotice(timer, NoticeOutcome.NOTHING)
    zone = ZoneInfo(page.time_zone)
    match timer.kind:
        case TimerKind.NOTICE_PUBLISH:
            return await _publish(connection, rules, zone, incident, incident_id, timer, now)
        case TimerKind.NOTICE_FANOUT:
            queued = await notice_fanout.fan_out(connection, rules, page, incident, timer, now)
            return FiredNotice(timer, NoticeOutcome.FANNED_OUT, queued=queued)
        case TimerKind.NOTICE_REMINDER | TimerKind.NOTICE_HOLDING:
            return await _promise_due(connection, rules, zone, incident, incident_id, timer, now)
        case _:
            return await _quiet(connection, rules, zone, incident, incident_id, timer, now)


async def _publish(
    connection: Connection,
    rules: RuleSet,
    zone: ZoneInfo,
    incident: Incident,
    incident_id: int,
    timer: Timer,
    now: datetime,
) -> FiredNotice:
    rule = rules.rules.get(incident.rule)
    if rule is None or rule.notice is None or incident.component is None or not incident.is_open:
        return FiredNotice(timer, NoticeOutcome.NOTHING)
    if timer.payload.get(PUBLISH_AT_ONCE):
        return await publish_draft(connection, rules, zone, incident, incident_id, timer, now)
    if await public_incidents.open_for(connection, incident.component) is not None:
        await publish_first(
            connection, rules, incident, incident_id, first_notice(rules, zone, incident, now), now
        )
        return FiredNotice(timer, NoticeOutcome.JOINED)
    publish = rule.notice.publish
    if publish.mode is PublishMode.IMMEDIATELY:
        first = first_notice(rules, zone, incident, now)
        await publish_first(connection, rules, incident, incident_id, first, now)
        return FiredNotice(timer, NoticeOutcome.PUBLISHED, first_after=now - incident.opened_at)
    first = first_notice(rules, zone, incident, now + publish.delay)
    publish_at = now + publish.delay if publish.mode is PublishMode.AFTER_VETO_WINDOW else None
    draft = notice_drafts.Draft(
        incident_id,
        incident.component,
        rule.outage_level.value,
        first.name,
        first.body,
        first.next_update_at or now,
        publish_at,
        now,
    )
    await notice_drafts.add(connection, draft)
    if publish_at is None:
        return FiredNotice(timer, NoticeOutcome.DRAFTED)
    spec = TimerSpec(TimerKind.NOTICE_PUBLISH, publish_at, {PUBLISH_AT_ONCE: True})
    await timers.add_incident_timers(connection, incident_id, incident.epoch, [spec])
    return FiredNotice(timer, NoticeOutcome.AWAITING_VETO)


async def publish_draft(
    connection: Connection,
    rules: RuleSet,
    zone: ZoneInfo,
    incident: Incident,
    incident_id: int,
    timer: Timer | None,
    now: datetime,
) -> FiredNotice:
    """Publish the incident's pending draft (its window ran out, or a person said so); an
    edited draft goes out in its editor's words, an untouched one is written afresh."""
    draft = await notice_drafts.lock(connection, incident_id)
    if draft is None or not draft.pending:
        return FiredNotice(timer, NoticeOutcome.VETOED)
    first = first_notice(rules, zone, incident, now)
    if draft.edited_by is not None:
        due = draft.next_update_at if draft.next_update_at > now else first.next_update_at
        first = public_incidents.FirstNotice(draft.name, draft.body, due)
    joined = await publish_first(connection, rules, incident, incident_id, first, now)
    await notice_drafts.mark_published(connection, incident_id, now)
    if not joined.opened:
        return FiredNotice(timer, NoticeOutcome.JOINED)
    return FiredNotice(timer, NoticeOutcome.PUBLISHED, first_after=now - incident.opened_at)


async def _promise_due(
    connection: Connection,
    rules: RuleSet,
    zone: ZoneInfo,
    incident: Incident,
    incident_id: int,
    timer: Timer,
    now: datetime,
) -> FiredNotice:
    public = await public_incidents.of_incident(connection, incident_id)
    promise = datetime.fromisoformat(timer.payload["promised"])
    if public is None or not public.is_open or promised(public) != promise:
        return FiredNotice(timer, NoticeOutcome.SUPERSEDED)
    if timer.kind is TimerKind.NOTICE_REMINDER:
        first_step = incident.policy.steps[0].channels if incident.policy else ()
        who = reminded(incident.acknowledged_by, incident.paged or first_step, rules.people)
        reminder = NoticeReminder(
            incident_id, incident.title, who.commander, public.public_id, promise.isoformat()
        )
        await outbox.add_reminders(connection, incident_id, who.keys, reminder, now)
        return FiredNotice(timer, NoticeOutcome.REMINDED)
    published = await publish_update(
        connection,
        rules,
        zone,
        incident,
        incident_id,
        public,
        public.status,
        now,
        kind=NoticeKind.HOLDING_UPDATE,
    )
    return FiredNotice(timer, NoticeOutcome.HOLDING, punctuality=published.punctuality)


async def _last_out(
    connection: Connection, incident: Incident, incident_id: int, final: bool, now: datetime
) -> PublicIncident | NoticeOutcome:
    """The public incident this resolution (or the end of its quiet period) may resolve, or why
    it may not: others still hold it, or the incident fired again in the quiet period."""
    if final:
        public = await public_incidents.of_incident(connection, incident_id)
        if public is None or not public.is_open or public.status is not IncidentStatus.MONITORING:
            return NoticeOutcome.SUPERSEDED
        if incident.is_open:  # it fired again in the quiet period: its next resolution decides
            return NoticeOutcome.SUPERSEDED
        if public.component in await public_incidents.open_levels(connection):
            return NoticeOutcome.KEPT_OPEN
        return public
    left = await public_incidents.leave(connection, incident_id, now)
    if left is None or not left.incident.is_open:
        return NoticeOutcome.NOTHING
    return NoticeOutcome.KEPT_OPEN if left.remaining else left.incident


async def _quiet(
    connection: Connection,
    rules: RuleSet,
    zone: ZoneInfo,
    incident: Incident,
    incident_id: int,
    timer: Timer,
    now: datetime,
) -> FiredNotice:
    """An incident resolved: leave its public incident; the last one out resolves it (at once
    when a person resolved, after the quiet period in monitoring when the alerts cleared)."""
    public = await _last_out(
        connection, incident, incident_id, bool(timer.payload.get("final")), now
    )
    if isinstance(public, NoticeOutcome):
        return FiredNotice(timer, public)
    if timer.payload.get("by") or timer.payload.get("final"):
        published = await publish_update(
            connection,
            rules,
            zone,
            incident,
            incident_id,
            public,
            IncidentStatus.RESOLVED,
            now,
            kind=NoticeKind.RESOLUTION,
        )
        return FiredNotice(timer, NoticeOutcome.RESOLVED, punctuality=published.punctuality)
    published = await publish_update(
        connection, rules, zone, incident, incident_id, public, IncidentStatus.MONITORING, now
    )
    quiet = TimerSpec(
        TimerKind.NOTICE_QUIET, now + rules.notice_policy.quiet_period, {"final": True}
    )
    await timers.add_incident_timers(connection, incident_id, incident.epoch, [quiet])
    return FiredNotice(timer, NoticeOutcome.MONITORING, punctuality=published.punctuality)


DEFAULT_PAGE = PageInfo("000000000000", "Our shop", "http://127.0.0.1:9095", "Etc/UTC")


class NoticeStage:
    """The cycle's stage that fires notice timers (:func:`fire_notices`) for ``page``: its
    time zone for the times customers read, its name and address for subscribers."""

    name = "notices"
    lane = Lane.DETECT

    def __init__(self, page: PageInfo) -> None:
        self._page = page

    async def run(self, context: CycleContext) -> NoticeBatch:
        """Fire the notice timers due now."""
        return await fire_notices(
            context.pool, context.routes.rules, self._page, context.owner, context.now
        )
