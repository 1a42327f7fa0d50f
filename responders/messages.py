"""Typed message content the outbox carries to channels; each channel renders its own wire format."""

from __future__ import annotations

from enum import StrEnum


class MessageKind(StrEnum):
    """What an outbox row carries; a channel declares which kinds it can deliver."""

    PAGE = "page"
