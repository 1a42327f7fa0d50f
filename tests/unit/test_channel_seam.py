"""The channel seam: channels are built by spec type, and a kind a channel does not declare is
refused for good before it is sent."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import aiohttp
import pytest

from detector.ruleset.channel_specs import ChannelSpec
from detector.service.app import channel_registry
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
class StubSpec:
    name: str


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
    def test_builds_by_spec_type(self) -> None:
        registry = ChannelRegistry()
        registry.register(StubSpec, lambda spec: RecordingChannel(spec.name, {MessageKind.PAGE}))

        channel = registry.build(StubSpec("chat"))

        assert (channel.name, channel.kinds) == ("chat", {MessageKind.PAGE})

    def test_one_factory_per_spec_type(self) -> None:
        registry = ChannelRegistry()
        registry.register(StubSpec, lambda spec: RecordingChannel(spec.name, ()))

        with pytest.raises(ValueError, match="StubSpec already has a channel factory"):
            registry.register(StubSpec, lambda spec: RecordingChannel(spec.name, ()))

    def test_an_unregistered_spec_type_is_a_wiring_error(self) -> None:
        with pytest.raises(LookupError, match="no channel integration is registered for StubSpec"):
            ChannelRegistry().build(StubSpec("chat"))

    async def test_every_channel_type_of_the_rule_files_has_an_integration(self) -> None:
        spec_type = typing.get_args(ChannelSpec)[0]
        members = typing.get_args(spec_type) if typing.get_origin(spec_type) else (spec_type,)
        async with aiohttp.ClientSession() as session:
            registry = channel_registry(session)

        assert members
        assert [member for member in members if member not in registry] == []
