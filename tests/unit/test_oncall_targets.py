"""Who an escalation step reaches: its people, its schedules' on-call people, its channels,
and the schedules that had nobody."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from responders.escalation import EscalationStep
from responders.oncall.model import Layer, Override, Restriction, Schedule
from responders.oncall.targets import Notified, notified_at

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2027-06-07, 10:00 CEST: office hours.
MONDAY_MORNING = datetime(2027, 6, 7, 8, 0, tzinfo=UTC)
SATURDAY = datetime(2027, 6, 12, 8, 0, tzinfo=UTC)


def one_layer(name: str, members: tuple[str, ...], *restrictions: Restriction) -> Schedule:
    layer = Layer(
        name, members, timedelta(weeks=1), time(9), BERLIN, date(2027, 6, 7), restrictions
    )
    return Schedule(name, BERLIN, (layer,))


SCHEDULES = {
    "primary": one_layer("primary", ("ann", "bob")),
    "secondary": one_layer("secondary", ("cy",)),
    "office": one_layer("office", ("dan",), Restriction(frozenset(range(5)), time(9), time(17))),
    "also-ann": one_layer("also-ann", ("ann",)),
}
STORED = {"secondary": [Override("eve", MONDAY_MORNING, MONDAY_MORNING + timedelta(hours=2))]}


@pytest.mark.parametrize(
    ("step", "at", "overrides", "expected"),
    [
        pytest.param(
            EscalationStep(people=("zoe",), schedules=("primary", "secondary")),
            MONDAY_MORNING,
            {},
            Notified(("zoe", "ann", "cy"), (), ()),
            id="people first, then each schedule's on-call person in order",
        ),
        pytest.param(
            EscalationStep(channels=("chat", "mail"), schedules=("primary",)),
            MONDAY_MORNING,
            {},
            Notified(("ann",), ("chat", "mail"), ()),
            id="channels alongside schedules",
        ),
        pytest.param(
            EscalationStep(people=("ann",), schedules=("primary", "also-ann")),
            MONDAY_MORNING,
            {},
            Notified(("ann",), (), ()),
            id="one person reached twice is told once",
        ),
        pytest.param(
            EscalationStep(schedules=("office", "primary")),
            SATURDAY,
            {},
            Notified(("ann",), (), ("office",)),
            id="a schedule with nobody on call is named",
        ),
        pytest.param(
            EscalationStep(channels=("chat",), schedules=("no-such", "office")),
            SATURDAY,
            {},
            Notified((), ("chat",), ("no-such", "office")),
            id="an unknown schedule counts as empty",
        ),
        pytest.param(
            EscalationStep(schedules=("secondary",)),
            MONDAY_MORNING,
            STORED,
            Notified(("eve",), (), ()),
            id="a stored override of that schedule",
        ),
        pytest.param(
            EscalationStep(schedules=("primary",)),
            MONDAY_MORNING,
            STORED,
            Notified(("ann",), (), ()),
            id="another schedule's override changes nothing",
        ),
        pytest.param(
            EscalationStep(schedules=("secondary",)),
            MONDAY_MORNING - timedelta(days=1),
            {},
            Notified((), (), ("secondary",)),
            id="before the rotation starts",
        ),
    ],
)
def test_notified_at(
    step: EscalationStep,
    at: datetime,
    overrides: Mapping[str, Sequence[Override]],
    expected: Notified,
) -> None:
    assert notified_at(step, SCHEDULES, at, overrides) == expected


@pytest.mark.parametrize(
    ("notified", "reaches"),
    [
        pytest.param(Notified(("ann",), (), ()), True, id="a person"),
        pytest.param(Notified((), ("chat",), ("office",)), True, id="a channel"),
        pytest.param(Notified((), (), ("office",)), False, id="only empty schedules"),
        pytest.param(Notified((), (), ()), False, id="an empty step"),
    ],
)
def test_reaches_anyone(notified: Notified, reaches: bool) -> None:
    assert notified.reaches_anyone is reaches


def test_overrides_are_optional() -> None:
    step = EscalationStep(schedules=("primary",))

    assert notified_at(step, SCHEDULES, MONDAY_MORNING).people == ("ann",)
