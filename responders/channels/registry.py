"""Which integration builds a channel from each kind of channel spec.

The registry knows spec types only as keys, so responders stay free of the rule-file schema:
the service registers each spec type with the factory that turns it into a channel, and adding
an integration is one module plus one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from responders.channels.protocol import Channel

Spec = TypeVar("Spec")


class ChannelRegistry:
    """A mapping from spec type to channel factory, filled once at start-up."""

    def __init__(self) -> None:
        self._factories: dict[type[Any], Callable[[Any], Channel]] = {}

    def register(self, spec_type: type[Spec], factory: Callable[[Spec], Channel]) -> None:
        """Build channels of ``spec_type`` with ``factory``; each type has exactly one."""
        if spec_type in self._factories:
            raise ValueError(f"{spec_type.__name__} already has a channel factory")
        self._factories[spec_type] = factory

    def __contains__(self, spec_type: object) -> bool:
        return spec_type in self._factories

    def build(self, spec: object) -> Channel:
        """The channel ``spec`` describes (a factory may raise when its spec cannot be met)."""
        factory = self._factories.get(type(spec))
        if factory is None:
            raise LookupError(f"no channel integration is registered for {type(spec).__name__}")
        return factory(spec)
