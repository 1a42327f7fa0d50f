"""The channel seam: channels are built by spec type, and a kind a channel does not declare is
refused for good before it is sent."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import aiohttp
import pytest

from detector.ruleset.channel_specs import ChannelSpec, Target
from detector.service.integrations import channel_registry
from responders.channels.protocol import DeliveryError, FailureReason, deliver
from responders.channels.registry import ChannelRegistry
from responders.messages import MessageKind, Page, PageEvent, PageLinks, PageMessage
from tests.fakes import RecordingChannel

PAGE = PageMessage(
    Page(
        event=PageEvent.TRIGGERED,
        incident_id=1,
        title="Checkout errors",
        severity="major",
        summary="",
        state="triggered",
        rule="checkout-errors",
        component="checkout",
        group={},
        step=0,
    ),
    PageLinks(incident="https://stormwatch.example/api/v1/incidents/1", acknowledge=None),
)


@dataclass(frozen=True)
class StubTarget:
    address: str


@dataclass(frozen=True)
class StubChannelSpec(StubTarget):
    """A shared channel: the target plus a name, as the rule files have it."""

    name: str


def stub_channel(name: str, target: StubTarget) -> RecordingChannel:
    return RecordingChannel(name, {MessageKind.PAGE})


class TestDeliver:
    async def test_a_declared_kind_is_sent(self) -> None:
        channel = RecordingChannel("chat", {MessageKind.PAGE})

        await deliver(channel, PAGE, "1:0:triggered:0:chat")

        assert channel.sent == [(PAGE, "1:0:triggered:0:chat")]

    async def test_an_undeclared_kind_is_refused_for_good(self) -> None:
        channel = RecordingChannel("status-mail", ())

        with pytest.raises(DeliveryError) as raised:
            await deliver(channel, PAGE, "1:0:triggered:0:status-mail")

        assert (raised.value.reason, raised.value.retryable) == (
            FailureReason.UNSUPPORTED_KIND,
            False,
        )
        assert str(raised.value) == "unsupported_kind: status-mail does not deliver page messages"
        assert channel.sent == []


class TestRegistry:
    def test_builds_by_spec_type_under_the_given_name(self) -> None:
        registry = ChannelRegistry()
        registry.register(StubTarget, stub_channel)

        channel = registry.build("person:alice:0", StubTarget("alice@example.com"))

        assert (channel.name, channel.kinds) == ("person:alice:0", {MessageKind.PAGE})

    def test_a_target_types_factory_builds_its_named_subclass(self) -> None:
        # shared channels are targets with a name: one registration serves both
        registry = ChannelRegistry()
        registry.register(StubTarget, stub_channel)

        channel = registry.build("team-chat", StubChannelSpec("chat@example.com", "team-chat"))

        assert StubChannelSpec in registry
        assert channel.name == "team-chat"

    def test_the_nearest_registered_type_wins(self) -> None:
        registry = ChannelRegistry()
        registry.register(StubTarget, stub_channel)
        registry.register(StubChannelSpec, lambda name, spec: RecordingChannel(name, ()))

        channel = registry.build("team-chat", StubChannelSpec("chat@example.com", "team-chat"))

        assert channel.kinds == frozenset()

    def test_one_factory_per_spec_type(self) -> None:
        registry = ChannelRegistry()
        registry.register(StubTarget, stub_channel)

        with pytest.raises(ValueError, match="StubTarget already has a channel factory"):
            registry.register(StubTarget, stub_channel)

    def test_an_unregistered_spec_type_is_a_wiring_error(self) -> None:
        with pytest.raises(
            LookupError, match="no channel integration is registered for StubTarget"
        ):
            ChannelRegistry().build("chat", StubTarget("chat@example.com"))

    @pytest.mark.parametrize(
        "spec_type",
        [
            *typing.get_args(Target),  # people's contact methods
            *typing.get_args(typing.get_args(ChannelSpec)[0]),  # shared channels
        ],
        ids=lambda spec_type: spec_type.__name__,
    )
    async def test_every_channel_type_of_the_rule_files_has_an_integration(
        self, spec_type: type[object]
    ) -> None:
        async with aiohttp.ClientSession() as session:
            registry = channel_registry(session)

        assert spec_type in registry
