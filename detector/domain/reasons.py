"""Why a decision came out as it did, one word per outcome.

The values are public: the ``result`` of an ack or resolve in the API, the ``outcome`` label of
``stormwatch_timers_fired_total`` and the ``outcome`` column of fired timers.
"""

from __future__ import annotations

from enum import StrEnum


class DecisionReason(StrEnum):
    """The reason a :class:`~detector.domain.model.Decision` names."""

    # The incident changes.
    OPENED = "opened"
    OPENED_AND_RESOLVED = "opened_and_resolved"
    """Opened and, every alert having resolved in the same batch, resolved at once."""
    REOPENED = "reopened"
    REOPENED_AND_RESOLVED = "reopened_and_resolved"
    ATTACHED = "attached"
    """New alerts (or new statuses of known ones) joined the open incident."""
    ATTACHED_AND_RESOLVED = "attached_and_resolved"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    PAGED = "paged"
    """The first step paged the people on call when the incident opened."""
    ACK_TIMED_OUT = "ack_timed_out"
    """Acknowledged but still unresolved after the policy's ``ack_timeout``: triggered again."""
    NOBODY_ON_CALL = "nobody_on_call"
    """No step from the one due to the end of the chain reached anyone: escalation stopped."""
    STILL_ACTIVE = "still_active"
    """A silence check found a recent signal and looks again later."""

    # Signals that change nothing.
    NO_NEW_FIRING_ALERT = "no_new_firing_alert"
    NOTHING_NEW = "nothing_new"

    # Human actions that change nothing.
    ALREADY_ACKNOWLEDGED = "already_acknowledged"
    ALREADY_RESOLVED = "already_resolved"
    LINK_SUPERSEDED = "link_superseded"
    """An ack link from an earlier episode: the incident resolved and fired again since."""

    # Timers that change nothing.
    STALE_EPOCH = "stale_epoch"
    """Something happened to the incident (ack, resolve, reopen) after the timer was set."""
    NOT_OPEN = "not_open"
    NOT_TRIGGERED = "not_triggered"
    NO_MORE_STEPS = "no_more_steps"
    NOT_ACKNOWLEDGED = "not_acknowledged"
    SILENCE_RULE_REMOVED = "silence_rule_removed"
    """The rule lost ``resolve_after`` (or is gone) since the silence check was set."""
    INCIDENT_GONE = "incident_gone"
    RULE_REMOVED = "rule_removed"
    CHECK_SUPERSEDED = "superseded"
    """A condition check whose group has a newer check time: that one decides."""
    CONDITION_REMOVED = "condition_removed"
    """The rule lost its condition and the alerts it kept waiting changed nothing."""
    CONDITION_PENDING = "condition_pending"
    """A condition check found the condition still waiting."""
