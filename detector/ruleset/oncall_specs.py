"""The on-call sections of the rule files: people (with their contact methods in order),
schedules and escalation targets."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from detector.ruleset.channel_specs import ContactMethodSpec, Name, Strict


class PersonSpec(Strict):
    """Someone who can be paged: ``contact_methods`` are tried in order, a method that fails
    for good falling through to the next."""

    id: Name
    name: str = Field(min_length=1, max_length=200)
    time_zone: Annotated[str, Field(min_length=1, examples=["Europe/Berlin"])]
    contact_methods: tuple[ContactMethodSpec, ...] = ()
