"""Checks of the on-call sections that span entries and files: people by id, the people and
schedules that layers, overrides and escalation steps name, and who a step can reach.

A step *reaches nobody* when, once every target it names exists, none of them could deliver a
page: it has no shared channel (in ``notify`` or ``targets``), none of its people has a contact
method, and none of its schedules lists, in a layer or a file override, a person who has one.
Overrides stored through the API cannot count (the files are checked without the database), so
a schedule filled only that way needs another target in the step. That is an error; a schedule
with a gap in the next days is only a warning (:func:`gap_warnings`), since the files may be
right and tomorrow's override not yet made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from detector.domain.fieldpath import field_path
from detector.ruleset.channel_specs import target_problem
from detector.ruleset.oncall_specs import PersonSpec, ScheduleSpec
from detector.ruleset.positions import RuleError
from detector.ruleset.schema import TARGET_KINDS, EscalationPolicySpec, StepSpec
from responders.oncall.model import Gap, Schedule
from responders.oncall.resolver import gaps

if TYPE_CHECKING:
    from detector.ruleset.loader import LoadedFile

GAP_HORIZON = timedelta(days=14)
"""How far ahead ``rules check`` and a reload look for times when nobody is on call."""
GAPS_SHOWN = 3
"""Gaps named per schedule; more are counted in one further warning."""

Where = tuple[str | int, ...]


def oncall_errors(files: Sequence[LoadedFile], channels: Mapping[str, str]) -> list[RuleError]:
    """Every on-call problem of a directory whose files are each valid on their own;
    ``channels``: the shared channels' names (to where they are defined)."""
    errors: list[RuleError] = []
    people: dict[str, PersonSpec] = {}
    first: dict[str, str] = {}
    for item in files:
        for index, person in enumerate(item.content.people):
            if person.id in first:
                reason = f"duplicate id {person.id!r}, first defined at {first[person.id]}"
                errors.append(_error(item, ("people", index, "id"), reason))
                continue
            first[person.id] = f"{item.name}:{item.document.line_of(('people', index))}"
            people[person.id] = person
            errors.extend(_person_errors(item, index, person))
    schedules = {s.name: s for item in files for s in item.content.schedules}
    targets = _Targets(people, schedules, channels)
    for item in files:
        for index, schedule in enumerate(item.content.schedules):
            errors.extend(_schedule_errors(item, ("schedules", index), schedule, people))
        for index, policy in enumerate(item.content.escalation_policies):
            errors.extend(_policy_errors(item, ("escalation_policies", index), policy, targets))
    return errors


def _person_errors(item: LoadedFile, index: int, person: PersonSpec) -> Iterator[RuleError]:
    where: Where = ("people", index, "contact_methods")
    if not person.contact_methods:
        yield _error(
            item,
            where,
            "no contact methods: list at least one (email, slack, webhook or pagerduty),"
            " or no page can reach them",
        )
    for method_index, method in enumerate(person.contact_methods):
        problem = target_problem(method)
        if problem is not None:
            yield _error(item, (*where, method_index), problem)


def _schedule_errors(
    item: LoadedFile, where: Where, schedule: ScheduleSpec, people: Mapping[str, PersonSpec]
) -> Iterator[RuleError]:
    for layer_index, layer in enumerate(schedule.layers):
        for member_index, member in enumerate(layer.members):
            if member not in people:
                path = (*where, "layers", layer_index, "members", member_index)
                yield _error(item, path, f"unknown person {member!r}")
    for index, override in enumerate(schedule.overrides):
        if override.person not in people:
            path = (*where, "overrides", index, "person")
            yield _error(item, path, f"unknown person {override.person!r}")
        for earlier_index, earlier in enumerate(schedule.overrides[:index]):
            if override.start < earlier.end and earlier.start < override.end:
                yield _error(
                    item,
                    (*where, "overrides", index),
                    f"overlaps overrides[{earlier_index}] ({earlier.person}, from"
                    f" {earlier.start.isoformat()} to {earlier.end.isoformat()}):"
                    " one person per slot, so shorten or merge them",
                )
                break


class _Targets:
    """What escalation targets can name, and whether they can reach anyone."""

    def __init__(
        self,
        people: Mapping[str, PersonSpec],
        schedules: Mapping[str, ScheduleSpec],
        channels: Mapping[str, str],
    ) -> None:
        self.known = {"person": people, "schedule": schedules, "channel": channels}
        self._people = people
        self._schedules = schedules

    def reachable(self, person: str) -> bool:
        """Whether ``person`` exists and has a contact method."""
        spec = self._people.get(person)
        return spec is not None and bool(spec.contact_methods)

    def reaches_someone(self, step: StepSpec) -> bool:
        """Whether a page at ``step`` could be delivered to anyone (see the module docstring)."""
        return (
            bool(step.channels)
            or any(self.reachable(person) for person in step.people)
            or any(
                self.reachable(person)
                for name in step.schedules
                for person in self._schedules[name].people
            )
        )


def _policy_errors(
    item: LoadedFile, where: Where, policy: EscalationPolicySpec, targets: _Targets
) -> Iterator[RuleError]:
    for step_index, step in enumerate(policy.steps):
        step_where = (*where, "steps", step_index)
        unknown = list(_unknown_targets(item, step_where, step, targets))
        yield from unknown
        if not unknown and not targets.reaches_someone(step):
            yield _error(
                item,
                step_where,
                "reaches nobody: no channel, and none of its people or schedule members"
                " has a contact method",
            )
    last = policy.steps[-1]
    if policy.repeat and last.escalate_after is None:
        yield _error(
            item,
            (*where, "steps", len(policy.steps) - 1),
            "escalate_after is required on the last step when the policy repeats"
            " (the wait before the chain starts again)",
        )


def _unknown_targets(
    item: LoadedFile, where: Where, step: StepSpec, targets: _Targets
) -> Iterator[RuleError]:
    for index, target in enumerate(step.targets):
        for kind in TARGET_KINDS:
            name = getattr(target, kind)
            if name is not None and name not in targets.known[kind]:
                yield _error(item, (*where, "targets", index, kind), f"unknown {kind} {name!r}")


def gap_warnings(
    files: Sequence[LoadedFile], schedules: Mapping[str, Schedule], now: datetime
) -> list[RuleError]:
    """A warning for each time nobody is on call in a schedule within ``GAP_HORIZON`` of
    ``now`` (file overrides counted, stored ones not), at most ``GAPS_SHOWN`` per schedule."""
    horizon = now + GAP_HORIZON
    warnings: list[RuleError] = []
    for item in files:
        for index, spec in enumerate(item.content.schedules):
            schedule = schedules[spec.name]
            found = gaps(schedule, now, horizon)
            where = ("schedules", index)
            warnings.extend(
                _error(item, where, "warning: " + _gap_text(schedule, gap, horizon))
                for gap in found[:GAPS_SHOWN]
            )
            if len(found) > GAPS_SHOWN:
                more = len(found) - GAPS_SHOWN
                reason = (
                    f"warning: {more} more time(s) with nobody on call in the next"
                    f" {GAP_HORIZON.days} days (schedule {schedule.name})"
                )
                warnings.append(_error(item, where, reason))
    return warnings


def _gap_text(schedule: Schedule, gap: Gap, horizon: datetime) -> str:
    zone = schedule.time_zone
    start = gap.start.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    end = gap.end.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    to = f"to at least {end}" if gap.end >= horizon else f"to {end}"
    return f"nobody is on call from {start} {to} {zone.key} (schedule {schedule.name})"


def _error(item: LoadedFile, path: Where, reason: str) -> RuleError:
    return RuleError(item.name, item.document.line_of(path), field_path(path), reason)
