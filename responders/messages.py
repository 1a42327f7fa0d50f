"""Typed message content the outbox carries to channels; each channel renders its own wire format.

A message is what was decided (frozen when its outbox row was queued) plus the links built when
it is sent. Adding a kind means a :class:`MessageKind` member, its frozen content here, and a
``Message`` union member; channels declare the kinds they deliver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class MessageKind(StrEnum):
    """What an outbox row carries; a channel declares which kinds it can deliver."""

    PAGE = "page"
    NOTICE_REMINDER = "notice_reminder"
    SUBSCRIBER_NOTICE = "subscriber_notice"
    SUBSCRIPTION_CONFIRM = "subscription_confirm"
    DIGEST = "digest"


class PageEvent(StrEnum):
    """Which change a page tells the on-call channel about: a call to act (``triggered``,
    ``reopened``) or an update on an earlier page of the same incident (``acknowledged``,
    ``resolved``)."""

    TRIGGERED = "triggered"
    REOPENED = "reopened"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"

    @property
    def needs_ack(self) -> bool:
        """Whether the page asks someone to act (and so carries an acknowledge link)."""
        return self in (PageEvent.TRIGGERED, PageEvent.REOPENED)


@dataclass(frozen=True, slots=True)
class Page:
    """What was decided about an incident, as recorded when the page was queued."""

    event: PageEvent
    incident_id: int
    title: str
    severity: str
    summary: str
    state: str
    rule: str
    component: str | None
    group: Mapping[str, str]
    step: int
    epoch: int | None = None  # the incident's epoch when queued (None in older queued pages)
    impact: str | None = None
    """The business impact estimate in plain words when the page was queued, if any."""
    recipient: str | None = None
    """The person the page is addressed to (their id), for a greeting and the ack's "who"."""


@dataclass(frozen=True, slots=True)
class PageLinks:
    """Where the engineer can look at the incident and, while it is unacknowledged, ack it."""

    incident: str
    acknowledge: str | None


@dataclass(frozen=True, slots=True)
class PageMessage:
    """A page as a channel receives it: the page and the links built for it at send time (an
    acknowledge link expires, so it is minted per attempt, not stored)."""

    kind: ClassVar[MessageKind] = MessageKind.PAGE
    page: Page
    links: PageLinks


@dataclass(frozen=True, slots=True)
class NoticeReminder:
    """A public update is due soon: the commander (or, with nobody named, whoever was paged)
    should write it before a holding update goes out in its place."""

    incident_id: int
    title: str
    commander: str | None
    public_incident: str
    """The public incident's public id."""
    due_at: str
    """ISO-8601 time the update is promised for."""


@dataclass(frozen=True, slots=True)
class NoticeReminderMessage:
    """A reminder as a channel receives it, with the incident's link built at send time."""

    kind: ClassVar[MessageKind] = MessageKind.NOTICE_REMINDER
    reminder: NoticeReminder
    incident_link: str


@dataclass(frozen=True, slots=True)
class Recipient:
    """A subscriber as a channel reaches it, with the links built for it at send time."""

    address: str
    """An email address, or a webhook URL."""
    unsubscribe_link: str
    confirm_link: str
    secret: str | None = None
    """A webhook's HMAC key."""


@dataclass(frozen=True, slots=True)
class SubscriberNoticeMessage:
    """A public update for one subscriber: the mail's subject and text, and the Statuspage-style
    ``incident`` and ``page`` objects a webhook carries."""

    kind: ClassVar[MessageKind] = MessageKind.SUBSCRIBER_NOTICE
    recipient: Recipient
    subject: str
    text: str
    incident: Mapping[str, object]
    page: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmMessage:
    """The double opt-in mail: nothing is sent to an address until it follows the link."""

    kind: ClassVar[MessageKind] = MessageKind.SUBSCRIPTION_CONFIRM
    recipient: Recipient
    page_name: str


@dataclass(frozen=True, slots=True)
class DigestMessage:
    """Pages bundled for one person during a storm: past the bundling limit, the calls to act
    that would each buzz a phone go out together as one message, each with its own links."""

    kind: ClassVar[MessageKind] = MessageKind.DIGEST
    pages: tuple[PageMessage, ...]


Message = (
    PageMessage
    | NoticeReminderMessage
    | SubscriberNoticeMessage
    | SubscriptionConfirmMessage
    | DigestMessage
)
"""Every message a channel can be handed (a union as kinds join)."""
