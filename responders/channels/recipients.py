"""How the outbox addresses a person's contact method: ``person:<id>:<index>``.

Shared channels are addressed by their name, which cannot contain ``:``, so the two never
collide. A page that fails for good on method ``i`` falls through to ``i + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

_PREFIX = "person"


@dataclass(frozen=True, slots=True)
class ContactAddress:
    """One contact method of one person."""

    person: str
    index: int

    @property
    def key(self) -> str:
        """The outbox ``channel`` value for this contact method."""
        return f"{_PREFIX}:{self.person}:{self.index}"

    def next(self) -> ContactAddress:
        """The person's next contact method (which may not exist)."""
        return ContactAddress(self.person, self.index + 1)


def contact_method(person: str, index: int = 0) -> str:
    """The outbox key of ``person``'s contact method ``index``."""
    return ContactAddress(person, index).key


def parse_contact(key: str) -> ContactAddress | None:
    """The contact method an outbox key names, or None for a shared channel's name."""
    prefix, _, rest = key.partition(":")
    person, _, index = rest.rpartition(":")
    if prefix != _PREFIX or not person or not index.isdigit():
        return None
    return ContactAddress(person, int(index))
