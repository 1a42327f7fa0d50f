"""``domain.related``: which incidents a newly opened one is linked to."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detector.domain.related import RELATED_KIND, OpenedIncident, link_entries, related
from tests.fakes import T0

WINDOW = timedelta(minutes=10)


def incident(id_: int, minutes: float, component: str | None = "checkout") -> OpenedIncident:
    return OpenedIncident(
        id_, f"rule-{id_}", f"title {id_}", component, T0 + timedelta(minutes=minutes)
    )


NEW = incident(10, 0)


@pytest.mark.parametrize(
    ("others", "window", "expected"),
    [
        # The pool incident opened 3 minutes before the journey's: one outage.
        ([incident(1, -3)], WINDOW, [1]),
        # Exactly at the window's edge still counts; a second later does not.
        ([incident(1, -10), incident(2, -10 - 1 / 60)], WINDOW, [1]),
        # Another component's incident is another problem.
        ([incident(1, -1, component="payments")], WINDOW, []),
        # An incident never relates to itself.
        ([NEW], WINDOW, []),
        # Oldest first, whatever order they come in.
        ([incident(2, -1), incident(1, -5)], WINDOW, [1, 2]),
        # A zero window turns linking off.
        ([incident(1, -1)], timedelta(0), []),
    ],
    ids=["same-outage", "window-edge", "other-component", "itself", "oldest-first", "off"],
)
def test_related(others: list[OpenedIncident], window: timedelta, expected: list[int]) -> None:
    assert [other.id for other in related(NEW, others, window)] == expected


def test_an_incident_without_a_component_relates_to_nothing() -> None:
    assert related(incident(10, 0, component=None), [incident(1, -1, None)], WINDOW) == []


def test_both_sides_of_a_link_get_a_timeline_line_naming_the_other() -> None:
    entries = link_entries(NEW, [incident(1, -3)], T0)
    assert [(owner, entry.kind, entry.detail["incident"]) for owner, entry in entries] == [
        (10, RELATED_KIND, 1),
        (1, RELATED_KIND, 10),
    ]
    assert entries[1][1].detail == {
        "incident": 10,
        "rule": "rule-10",
        "title": "title 10",
        "component": "checkout",
    }
