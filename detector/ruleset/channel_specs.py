"""Where a page can go, as the rule files describe it: shared channels (``channels:``) and the
contact methods of people (``people[].contact_methods``) use the same target types, so one
integration per type delivers both.

A target type describes the endpoint; a shared channel is a target with a ``name``. Secrets (URLs
with keys, routing keys, signing secrets) come from environment variables named in ``*_env``
fields, never from the file.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from detector.domain.durations import Duration

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
HttpUrl = Annotated[str, Field(pattern=r"^https?://")]
EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)]


class Strict(BaseModel):
    """Base for file models: frozen, and unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class RetrySpec(Strict):
    """How the outbox retries a failing channel before dead-lettering the message."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    initial_delay: Duration = timedelta(seconds=5)
    max_delay: Duration = timedelta(minutes=5)


MAX_CHANNEL_TIMEOUT = timedelta(seconds=30)
"""A send must end well within the 60 s for which delivery leases a message: past the lease
another replica sends the same page again."""


def _send_timeout(value: timedelta) -> timedelta:
    if not timedelta(0) < value <= MAX_CHANNEL_TIMEOUT:
        raise ValueError(
            "must be longer than 0s and at most 30s (0 would mean no timeout, and a send must"
            " end well within the 60s a delivery is leased for)"
        )
    return value


SendTimeout = Annotated[Duration, AfterValidator(_send_timeout)]


class WebhookTarget(Strict):
    """POST a JSON page to an HTTP endpoint, signed with HMAC-SHA256 when ``secret_env`` names
    the secret. Put keyed URLs in ``url_env``, not in the file."""

    type: Literal["webhook"]
    url: HttpUrl | None = None
    url_env: EnvName | None = None
    secret_env: EnvName | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: SendTimeout = timedelta(seconds=10)
    retry: RetrySpec = RetrySpec()


class SlackTarget(Strict):
    """A Slack-compatible incoming webhook: Block Kit messages, follow-ups as new messages."""

    type: Literal["slack"]
    url: HttpUrl | None = None
    url_env: EnvName | None = None
    timeout: SendTimeout = timedelta(seconds=10)
    retry: RetrySpec = RetrySpec()


class EmailTarget(Strict):
    """Mail through the service's SMTP server (``STORMWATCH_SMTP_*``) to ``to``."""

    type: Literal["email"]
    to: EmailAddress
    retry: RetrySpec = RetrySpec()


class PagerDutyTarget(Strict):
    """PagerDuty Events API v2 (trigger, acknowledge, resolve with one ``dedup_key`` per
    incident); the integration's routing key comes from ``routing_key_env``."""

    type: Literal["pagerduty"]
    routing_key_env: EnvName
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    timeout: SendTimeout = timedelta(seconds=10)
    retry: RetrySpec = RetrySpec()


Target = WebhookTarget | SlackTarget | EmailTarget | PagerDutyTarget
"""Any endpoint a page can be delivered to."""


class WebhookChannelSpec(WebhookTarget):
    """A shared webhook channel."""

    name: Name


class SlackChannelSpec(SlackTarget):
    """A shared Slack channel."""

    name: Name


class EmailChannelSpec(EmailTarget):
    """A shared mailbox (a team list, say)."""

    name: Name


class PagerDutyChannelSpec(PagerDutyTarget):
    """A shared PagerDuty service."""

    name: Name


ChannelSpec = Annotated[
    WebhookChannelSpec | SlackChannelSpec | EmailChannelSpec | PagerDutyChannelSpec,
    Field(discriminator="type"),
]
"""Every shared channel type a rule file can name, told apart by ``type``; the service
registers an integration for each target type (``service.integrations``)."""

ContactMethodSpec = Annotated[Target, Field(discriminator="type")]
"""A person's contact method: a target without a name (it is addressed as
``person:<id>:<index>``)."""

SharedChannel = WebhookChannelSpec | SlackChannelSpec | EmailChannelSpec | PagerDutyChannelSpec
"""A parsed shared channel (the plain union, for type annotations)."""


def target_problem(target: Target) -> str | None:
    """What is wrong with a target that the schema alone cannot say, if anything."""
    if isinstance(target, WebhookTarget | SlackTarget) and (target.url is None) == (
        target.url_env is None
    ):
        return "set exactly one of url or url_env"
    return None
