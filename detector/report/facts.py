"""What a post-incident report states, decided from the incident's record alone (pure).

Times are measured from the incident's own timestamps: detect from the first alert's
``startsAt`` to the incident opening, acknowledge and resolve from the opening, and the first
customer notice from the opening to the first public update published after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import groupby
from typing import Any

from detector.domain.impact import Impact
from responders.messages import MessageKind
from responders.statuspage.model import PublicIncident, PublicUpdate

_SENT = (MessageKind.PAGE.value, MessageKind.NOTICE_REMINDER.value)


class Promise(StrEnum):
    """Whether a public update's promised next update came by then."""

    KEPT = "kept"
    BROKEN = "broken"
    PENDING = "pending"
    NONE = "none"
    """The update promised nothing (resolved, postmortem)."""


@dataclass(frozen=True, slots=True)
class Durations:
    """The post-mortem's headline times (None: it has not happened)."""

    detect: timedelta | None
    acknowledge: timedelta | None
    first_notice: timedelta | None
    resolve: timedelta | None


@dataclass(frozen=True, slots=True)
class NoticeLine:
    """One public update and what became of its promise."""

    status: str
    published_at: datetime
    body: str
    promised_by: datetime | None
    promise: Promise


@dataclass(frozen=True, slots=True)
class PageLine:
    """One page or reminder sent (or not) to one channel, or one escalation."""

    at: datetime
    what: str
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report shows, in the order it shows it."""

    incident: Mapping[str, Any]
    first_alert_at: datetime | None
    first_notice_at: datetime | None
    durations: Durations
    timeline: Sequence[Mapping[str, Any]]
    pages: Sequence[PageLine]
    notices: Sequence[NoticeLine]
    public_url: str | None
    related: Sequence[Mapping[str, Any]]
    impact: Impact
    chart_svg: str
    generated_at: datetime


def when(value: str | None) -> datetime | None:
    """An API timestamp (ISO 8601) as a datetime."""
    return None if value is None else datetime.fromisoformat(value)


def build_report(
    detail: Mapping[str, Any],
    public: PublicIncident | None,
    public_url: str | None,
    impact: Impact,
    chart_svg: str,
    now: datetime,
) -> Report:
    """The report of the incident ``detail`` (as ``GET /api/v1/incidents/{id}`` has it)."""
    opened = when(detail["opened_at"])
    assert opened is not None
    starts = [when(alert["starts_at"]) for alert in detail["alerts"]]
    first_alert = min((start for start in starts if start is not None), default=None)
    updates = sorted(public.updates if public else (), key=lambda update: update.created_at)
    first_notice = next((u.created_at for u in updates if u.created_at >= opened), None)
    return Report(
        incident=detail,
        first_alert_at=first_alert,
        first_notice_at=first_notice,
        durations=Durations(
            detect=_since(first_alert, opened),
            acknowledge=_since(opened, when(detail["acknowledged_at"])),
            first_notice=_since(opened, first_notice),
            resolve=_since(opened, when(detail["resolved_at"])),
        ),
        timeline=detail["timeline"],
        pages=page_lines(detail["timeline"]),
        notices=notice_lines(updates, now),
        public_url=public_url,
        related=detail.get("related", []),
        impact=impact,
        chart_svg=chart_svg,
        generated_at=now,
    )


def notice_lines(updates: Sequence[PublicUpdate], now: datetime) -> list[NoticeLine]:
    """Each update (oldest first) with whether the next one came by the time it promised."""
    lines = []
    for index, update in enumerate(updates):
        following = updates[index + 1] if index + 1 < len(updates) else None
        lines.append(
            NoticeLine(
                status=update.status.value,
                published_at=update.created_at,
                body=update.body,
                promised_by=update.next_update_at,
                promise=_promise(update.next_update_at, following, now),
            )
        )
    return lines


def _promise(promised: datetime | None, following: PublicUpdate | None, now: datetime) -> Promise:
    if promised is None:
        return Promise.NONE
    if following is not None:
        return Promise.KEPT if following.created_at <= promised else Promise.BROKEN
    return Promise.PENDING if now <= promised else Promise.BROKEN


def page_lines(timeline: Sequence[Mapping[str, Any]]) -> list[PageLine]:
    """The pages, reminders and escalations on the timeline, in order."""
    lines = []
    for event in timeline:
        kind, detail = event["kind"], event["detail"]
        at = when(event["at"])
        assert at is not None
        if kind == "incident.escalated":
            channels = ", ".join(detail.get("channels", []))
            step = f"escalated: step {detail.get('step')} → {channels}"
            lines.append(PageLine(at, "escalated", step))
        elif kind.split(".")[0] in _SENT and "channel" in detail:
            message, outcome = kind.split(".", 1)
            event_name = detail.get("event") or message.replace("_", " ")
            text = (
                f"{event_name} to {detail['channel']}: {outcome.replace('_', ' ')}"
                f" (attempt {detail.get('attempt')})"
            )
            lines.append(PageLine(at, message, text))
    return steady_order(lines)


def steady_order(lines: list[PageLine]) -> list[PageLine]:
    """The same report from the same incident: one message sent to several channels at once
    is delivered concurrently, so its lines (same time, same message) come in any order on the
    timeline; they are listed by channel. Everything else keeps the timeline's order."""
    ordered: list[PageLine] = []
    for _, run in groupby(lines, key=lambda line: (line.at, line.what, _message(line))):
        ordered.extend(sorted(run, key=lambda line: line.detail))
    return ordered


def _message(line: PageLine) -> str:
    """What was sent (``acknowledged``), without the channel it went to."""
    return line.detail.split(" to ", 1)[0]


def _since(start: datetime | None, end: datetime | None) -> timedelta | None:
    return None if start is None or end is None else end - start


def span(value: timedelta | None) -> str:
    """A duration as a person reads it: ``1h 02m 05s``, ``4m 12s``, ``35s``; ``-`` for none."""
    if value is None:
        return "-"
    seconds = max(int(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"
