"""Which integration builds a channel from each kind of channel spec.

The registry knows spec types only as keys, so responders stay free of the rule-file schema:
the service registers each target type with the factory that turns it into a channel, and adding
an integration is one module plus one entry. A factory is found along the spec's class hierarchy,
so registering a target type (``WebhookTarget``) also builds its named shared-channel subclass
(``WebhookChannelSpec``): shared channels and people's contact methods share one integration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from responders.channels.protocol import Channel

Spec = TypeVar("Spec")

Factory = Callable[[str, Spec], Channel]
"""Builds the channel named ``name`` (its outbox key) from its spec."""


class ChannelRegistry:
    """A mapping from spec type to channel factory, filled once at start-up."""

    def __init__(self) -> None:
        self._factories: dict[type[Any], Callable[[str, Any], Channel]] = {}

    def register(self, spec_type: type[Spec], factory: Factory[Spec]) -> None:
        """Build channels of ``spec_type`` (and its subclasses) with ``factory``; each type has
        exactly one."""
        if spec_type in self._factories:
            raise ValueError(f"{spec_type.__name__} already has a channel factory")
        self._factories[spec_type] = factory

    def __contains__(self, spec_type: object) -> bool:
        return isinstance(spec_type, type) and self._factory(spec_type) is not None

    def build(self, name: str, spec: object) -> Channel:
        """The channel ``spec`` describes, named ``name`` (a factory may raise when its spec
        cannot be met, a secret missing from the environment say)."""
        factory = self._factory(type(spec))
        if factory is None:
            raise LookupError(f"no channel integration is registered for {type(spec).__name__}")
        return factory(name, spec)

    def _factory(self, spec_type: type[Any]) -> Callable[[str, Any], Channel] | None:
        """The factory of the nearest registered type in ``spec_type``'s hierarchy."""
        for ancestor in spec_type.__mro__:
            factory = self._factories.get(ancestor)
            if factory is not None:
                return factory
        return None
