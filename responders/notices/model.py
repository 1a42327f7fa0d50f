"""The words of the public side of an incident: which notice, which public status, how a rule
publishes, and the values a notice template can read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from responders.statuspage.model import IncidentStatus


class NoticeKind(StrEnum):
    """Which notice is written; each has its own template file (``<kind>.j2``)."""

    FIRST_NOTICE = "first_notice"
    UPDATE = "update"
    HOLDING_UPDATE = "holding_update"
    RESOLUTION = "resolution"
    POSTMORTEM = "postmortem"

    @property
    def template_file(self) -> str:
        """The template's file name in the rules directory's ``notices/`` folder."""
        return f"{self.value}.j2"


class PublishMode(StrEnum):
    """How a rule's first notice goes out: at once, after a window the commander may veto or
    edit it in, or as a draft a person publishes."""

    IMMEDIATELY = "immediately"
    AFTER_VETO_WINDOW = "after_veto_window"
    DRAFT = "draft"


@dataclass(frozen=True, slots=True)
class NoticeValues:
    """Everything a notice template can read; times are already written in the shop's zone."""

    components: tuple[str, ...]
    """Display names of the affected components, as customers know them."""
    status: IncidentStatus
    started_at: str
    impact: str = ""
    """What customers see (from the rule)."""
    still_works: str = ""
    """What still works: carts kept, no double charges, other payment methods (from the rule)."""
    message: str = ""
    """A person's own words for this update, if any."""
    next_update_at: str | None = None
    eta: str | None = None
    resolved_at: str | None = None
    postmortem: Mapping[str, str] = field(default_factory=dict)
    """impact, customer_action, compensation, prevention (post-incident notice)."""

    def as_template_vars(self) -> dict[str, object]:
        """The names templates use."""
        return {
            "components": list(self.components),
            "component_list": _spoken_list(self.components),
            "status": self.status.value,
            "started_at": self.started_at,
            "impact": self.impact,
            "still_works": self.still_works,
            "message": self.message,
            "next_update_at": self.next_update_at,
            "eta": self.eta,
            "resolved_at": self.resolved_at,
            "postmortem": dict(self.postmortem),
        }


def _spoken_list(names: tuple[str, ...]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
