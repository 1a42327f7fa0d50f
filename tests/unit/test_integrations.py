"""Channels are built for every endpoint the rules can page, shared channels by name and contact
methods by outbox key, with their secrets read from the environment; a missing secret refuses
the rules with an error that names the variable and whose endpoint needs it, never a value."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from detector.ruleset.channel_specs import (
    EmailTarget,
    PagerDutyChannelSpec,
    PagerDutyTarget,
    SharedChannel,
    SlackChannelSpec,
    SlackTarget,
    Target,
    WebhookChannelSpec,
    WebhookTarget,
)
from detector.ruleset.live import ChannelConfigError, LiveRules
from detector.ruleset.oncall_specs import PersonSpec
from detector.ruleset.rules import RuleSet
from detector.service.integrations import build_channels, channel_registry
from responders.channels.pagerduty import PagerDutyChannel
from responders.channels.protocol import Channel
from responders.channels.slack import SlackChannel
from responders.channels.webhook import WebhookChannel
from tests.fakes import FakeClock, RecordingChannel

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefghijkl"
SECRETS = {
    "CHAT_URL": "https://hooks.slack.example/services/T0/B0/SECRETPATH",
    "PD_KEY": ROUTING_KEY,
    "ALICE_HOOK_SECRET": "alice-signing-secret",
}


def rules(channels: Mapping[str, SharedChannel] | None = None, *methods: Target) -> RuleSet:
    """A rule set with ``channels`` and a person ``alice`` with ``methods``, in order."""
    alice = PersonSpec(id="alice", name="Alice", time_zone="Europe/Berlin", contact_methods=methods)
    return RuleSet(
        rules={}, components={}, channels=channels or {}, policies={}, people={"alice": alice}
    )


def shared(*specs: SharedChannel) -> dict[str, SharedChannel]:
    return {spec.name: spec for spec in specs}


def webhook(**fields: Any) -> WebhookChannelSpec:
    return WebhookChannelSpec(type="webhook", name="pager", **fields)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def build(
    session: aiohttp.ClientSession, ruleset: RuleSet, environ: Mapping[str, str] = SECRETS
) -> Mapping[str, Channel]:
    return build_channels(ruleset, channel_registry(session, FakeClock().now, environ))


class TestEveryEndpointIsBuilt:
    async def test_shared_channels_by_name_and_contact_methods_by_outbox_key(
        self, session: aiohttp.ClientSession
    ) -> None:
        ruleset = rules(
            shared(
                webhook(url="https://pager.example/hook"),
                SlackChannelSpec(type="slack", name="team-chat", url_env="CHAT_URL"),
                PagerDutyChannelSpec(type="pagerduty", name="pd", routing_key_env="PD_KEY"),
            ),
            WebhookTarget(
                type="webhook", url="https://alice.example", secret_env="ALICE_HOOK_SECRET"
            ),
            SlackTarget(type="slack", url_env="CHAT_URL"),
            PagerDutyTarget(type="pagerduty", routing_key_env="PD_KEY"),
        )

        channels = build(session, ruleset)

        assert {key: (channel.name, type(channel)) for key, channel in channels.items()} == {
            "pager": ("pager", WebhookChannel),
            "team-chat": ("team-chat", SlackChannel),
            "pd": ("pd", PagerDutyChannel),
            "person:alice:0": ("person:alice:0", WebhookChannel),
            "person:alice:1": ("person:alice:1", SlackChannel),
            "person:alice:2": ("person:alice:2", PagerDutyChannel),
        }

    def test_each_channel_names_its_type_for_the_notifications_metric(self) -> None:
        assert [WebhookChannel.type, SlackChannel.type, PagerDutyChannel.type] == [
            "webhook",
            "slack",
            "pagerduty",
        ]

    async def test_email_targets_go_to_the_mail_integration_when_there_is_one(
        self, session: aiohttp.ClientSession
    ) -> None:
        built: list[tuple[str, str]] = []

        def page_mail(name: str, target: EmailTarget) -> RecordingChannel:
            built.append((name, target.to))
            return RecordingChannel(name, ())

        registry = channel_registry(session, FakeClock().now, SECRETS, email=page_mail)
        ruleset = rules(None, EmailTarget(type="email", to="alice@example.com"))

        channels = build_channels(ruleset, registry)

        assert list(channels) == ["person:alice:0"]
        assert built == [("person:alice:0", "alice@example.com")]

    async def test_the_secrets_stay_out_of_every_repr(self, session: aiohttp.ClientSession) -> None:
        ruleset = rules(
            shared(
                SlackChannelSpec(type="slack", name="team-chat", url_env="CHAT_URL"),
                PagerDutyChannelSpec(type="pagerduty", name="pd", routing_key_env="PD_KEY"),
            ),
            WebhookTarget(
                type="webhook", url="https://alice.example", secret_env="ALICE_HOOK_SECRET"
            ),
        )

        shown = " ".join(repr(channel) for channel in build(session, ruleset).values())

        assert [value for value in SECRETS.values() if value in shown] == []


class TestMissingSecrets:
    @pytest.mark.parametrize(
        ("ruleset", "environ", "message"),
        [
            # a shared channel's keyed URL
            pytest.param(
                rules(shared(SlackChannelSpec(type="slack", name="team-chat", url_env="CHAT_URL"))),
                {},
                "channel 'team-chat': environment variable CHAT_URL is not set",
                id="shared slack url",
            ),
            # an empty variable is as good as none
            pytest.param(
                rules(shared(webhook(url_env="PAGER_URL"))),
                {"PAGER_URL": ""},
                "channel 'pager': environment variable PAGER_URL is not set",
                id="empty variable",
            ),
            # a person's second contact method, counted as people read the file
            pytest.param(
                rules(
                    None,
                    SlackTarget(type="slack", url_env="CHAT_URL"),
                    WebhookTarget(
                        type="webhook", url="https://alice.example", secret_env="ALICE_HOOK_SECRET"
                    ),
                ),
                {"CHAT_URL": SECRETS["CHAT_URL"]},
                "person 'alice', contact method 2: environment variable ALICE_HOOK_SECRET"
                " is not set",
                id="contact method signing secret",
            ),
            # PagerDuty's routing key
            pytest.param(
                rules(
                    shared(
                        PagerDutyChannelSpec(type="pagerduty", name="pd", routing_key_env="PD_KEY")
                    )
                ),
                {"CHAT_URL": SECRETS["CHAT_URL"]},
                "channel 'pd': environment variable PD_KEY is not set",
                id="pagerduty routing key",
            ),
            # a routing key PagerDuty would refuse: said without showing it
            pytest.param(
                rules(
                    shared(
                        PagerDutyChannelSpec(type="pagerduty", name="pd", routing_key_env="PD_KEY")
                    )
                ),
                {"PD_KEY": "short-secret-key"},
                "channel 'pd': environment variable PD_KEY must hold a 32-character PagerDuty"
                " integration key",
                id="pagerduty routing key of the wrong length",
            ),
            # no SMTP integration: email paging cannot work, so the rules are refused
            pytest.param(
                rules(None, EmailTarget(type="email", to="alice@example.com")),
                {},
                "person 'alice', contact method 1: email paging is not configured"
                " (no SMTP integration)",
                id="email without mail integration",
            ),
        ],
    )
    async def test_a_clear_error_without_any_value(
        self,
        session: aiohttp.ClientSession,
        ruleset: RuleSet,
        environ: dict[str, str],
        message: str,
    ) -> None:
        with pytest.raises(ChannelConfigError) as raised:
            build(session, ruleset, environ)

        assert str(raised.value) == message
        assert [value for value in environ.values() if value and value in message] == []


PAGING = """
channels:
  - name: team-chat
    type: slack
    url_env: CHAT_URL
escalation_policies:
  - name: shop-oncall
    steps:
      - notify: [team-chat]
rules:
  - name: checkout-failing
    match: ['alertname="CheckoutErrors"']
    severity: critical
    title: "Checkout is failing"
    escalation_policy: shop-oncall
"""


class TestReload:
    async def test_secrets_are_read_on_every_reload_and_a_missing_one_keeps_the_running_rules(
        self, session: aiohttp.ClientSession, tmp_path: Path
    ) -> None:
        (tmp_path / "paging.yml").write_text(PAGING)
        environ = {"CHAT_URL": SECRETS["CHAT_URL"]}
        clock = FakeClock()
        registry = channel_registry(session, clock.now, environ)
        live = LiveRules(tmp_path, lambda rules: build_channels(rules, registry), clock.now)
        running = live.routes

        del environ["CHAT_URL"]  # the variable went missing from the service's environment
        status = live.reload()

        assert (status.ok, status.errors) == (
            False,
            ("channel 'team-chat': environment variable CHAT_URL is not set",),
        )
        assert live.routes is running
