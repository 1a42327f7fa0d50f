"""One file of the rules directory: every section an SRE may write, each optional."""

from __future__ import annotations

from detector.probes.journey import JourneySpec
from detector.ruleset.channel_specs import ChannelSpec, Strict
from detector.ruleset.maintenance import MaintenanceWindowSpec, SilenceSpec
from detector.ruleset.notice_rules import NoticePolicySpec
from detector.ruleset.oncall_specs import PersonSpec, ScheduleSpec
from detector.ruleset.schema import ComponentSpec, EscalationPolicySpec, RuleSpec

SECTIONS = (
    "rules",
    "components",
    "channels",
    "escalation_policies",
    "silences",
    "maintenance_windows",
    "journeys",
    "schedules",
)
"""Sections whose entries have a ``name`` that must be unique across the directory (people
are told apart by ``id``: ``oncall_checks`` keeps those unique)."""


class RulesFile(Strict):
    """One YAML file in the rules directory; any section may be absent."""

    rules: tuple[RuleSpec, ...] = ()
    components: tuple[ComponentSpec, ...] = ()
    channels: tuple[ChannelSpec, ...] = ()
    escalation_policies: tuple[EscalationPolicySpec, ...] = ()
    silences: tuple[SilenceSpec, ...] = ()
    maintenance_windows: tuple[MaintenanceWindowSpec, ...] = ()
    journeys: tuple[JourneySpec, ...] = ()
    notices: NoticePolicySpec | None = None
    people: tuple[PersonSpec, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
