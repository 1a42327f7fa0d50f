"""The integration behind each channel type the rule files can name, and the channels a rule
set needs: its shared channels by name and every person's contact methods by outbox key
(``person:<id>:<index>``).

Secrets (keyed URLs, signing secrets, routing keys) are read from the environment when the
channels are built, at start and on every reload: a missing variable refuses the rules with an
error naming the variable and whose endpoint needs it, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import aiohttp

from detector.ruleset.channel_specs import EmailTarget, PagerDutyTarget, SlackTarget, WebhookTarget
from detector.ruleset.live import ChannelConfigError
from detector.ruleset.rules import RuleSet
from responders.channels.pagerduty import PagerDutyChannel
from responders.channels.protocol import Channel
from responders.channels.recipients import parse_contact
from responders.channels.registry import ChannelRegistry
from responders.channels.slack import SlackChannel
from responders.channels.webhook import WebhookChannel

ROUTING_KEY_LENGTH = 32
"""PagerDuty integration keys are 32 characters; anything else is refused by its API."""

EmailFactory = Callable[[str, EmailTarget], Channel]
"""Builds the page-mail channel named by its outbox key (the SMTP integration provides it)."""


def channel_registry(
    session: aiohttp.ClientSession,
    now: Callable[[], datetime] | None = None,
    environ: Mapping[str, str] | None = None,
    email: EmailFactory | None = None,
) -> ChannelRegistry:
    """Every target type the rule files can name, with the integration that builds it;
    ``environ`` holds the secrets (the process environment unless given), ``now`` stamps
    signed webhooks."""
    env = os.environ if environ is None else environ
    clock = now or _system_now
    registry = ChannelRegistry()
    registry.register(WebhookTarget, lambda name, t: _webhook(name, t, session, env, clock))
    registry.register(SlackTarget, lambda name, t: _slack(name, t, session, env))
    registry.register(PagerDutyTarget, lambda name, t: _pagerduty(name, t, session, env))
    registry.register(EmailTarget, email or _mail_not_configured)  # page mail over SMTP
    return registry


def build_channels(rules: RuleSet, registry: ChannelRegistry) -> Mapping[str, Channel]:
    """Construct every endpoint the rules can page, each named by its outbox key and built by
    its type's registered integration."""
    return {key: registry.build(key, target) for key, target in rules.every_channel().items()}


def owner(name: str) -> str:
    """Whose endpoint an outbox key is, for error messages: a shared channel or a person's
    contact method (counted from 1, as people read the file)."""
    contact = parse_contact(name)
    if contact is None:
        return f"channel {name!r}"
    return f"person {contact.person!r}, contact method {contact.index + 1}"


def secret(environ: Mapping[str, str], variable: str, name: str) -> str:
    """The value of ``variable``, or a ChannelConfigError naming it and whose endpoint needs it
    (an empty value counts as unset)."""
    value = environ.get(variable, "")
    if not value:
        raise ChannelConfigError(f"{owner(name)}: environment variable {variable} is not set")
    return value


def _url(name: str, url: str | None, url_env: str | None, environ: Mapping[str, str]) -> str:
    """The endpoint's URL, from the file or (when it holds a key) the environment."""
    if url:
        return url
    if url_env is None:
        raise ChannelConfigError(f"{owner(name)}: set exactly one of url or url_env")
    return secret(environ, url_env, name)


def _webhook(
    name: str,
    target: WebhookTarget,
    session: aiohttp.ClientSession,
    environ: Mapping[str, str],
    now: Callable[[], datetime],
) -> WebhookChannel:
    """A JSON webhook, signed when the target names a secret."""
    url = _url(name, target.url, target.url_env, environ)
    signing = secret(environ, target.secret_env, name) if target.secret_env else None
    return WebhookChannel(
        name, url, session, target.headers, target.timeout, secret=signing, now=now
    )


def _slack(
    name: str, target: SlackTarget, session: aiohttp.ClientSession, environ: Mapping[str, str]
) -> SlackChannel:
    """A Slack incoming webhook (its URL is the credential: keep it in ``url_env``)."""
    url = _url(name, target.url, target.url_env, environ)
    return SlackChannel(name, url, session, target.timeout)


def _pagerduty(
    name: str,
    target: PagerDutyTarget,
    session: aiohttp.ClientSession,
    environ: Mapping[str, str],
) -> PagerDutyChannel:
    """A PagerDuty Events API v2 integration, keyed by ``routing_key_env``."""
    key = secret(environ, target.routing_key_env, name)
    if len(key) != ROUTING_KEY_LENGTH:
        raise ChannelConfigError(
            f"{owner(name)}: environment variable {target.routing_key_env} must hold a"
            f" {ROUTING_KEY_LENGTH}-character PagerDuty integration key"
        )
    return PagerDutyChannel(name, key, session, target.url, target.timeout)


def _mail_not_configured(name: str, target: EmailTarget) -> Channel:
    """Email paging needs the SMTP integration, which this service was started without."""
    raise ChannelConfigError(f"{owner(name)}: email paging is not configured (no SMTP integration)")


def _system_now() -> datetime:
    return datetime.now(UTC)
