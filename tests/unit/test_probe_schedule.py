"""The schedule and the failure thresholds of journeys, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detector.probes.schedule import EPOCH, next_run, start_offset
from detector.probes.thresholds import Health, Transition, advance

T = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("interval", "offset", "after", "expected"),
    [
        (60 * S, 0 * S, T, T + 60 * S),  # on a slot: strictly after
        (60 * S, 0 * S, T + 1 * S, T + 60 * S),
        (60 * S, 15 * S, T, T + 15 * S),
        (60 * S, 15 * S, T + 15 * S, T + 75 * S),
        (60 * S, 15 * S, T + 14.999999 * S, T + 15 * S),
        (10 * S, 3 * S, T + 59 * S, T + 63 * S),
        (timedelta(minutes=7), 0 * S, EPOCH, EPOCH + timedelta(minutes=7)),
        (timedelta(milliseconds=1500), 0 * S, T, T + timedelta(milliseconds=1500)),
        (timedelta(hours=1), 30 * S, T - 1 * S, T + 30 * S),
    ],
)
def test_next_run(
    interval: timedelta, offset: timedelta, after: datetime, expected: datetime
) -> None:
    assert next_run(interval, offset, after) == expected


def test_offsets_are_stable_within_the_interval_and_spread() -> None:
    interval = 10 * S
    offsets = [start_offset(f"journey-{n}", "eu-west", interval) for n in range(200)]
    assert offsets == [start_offset(f"journey-{n}", "eu-west", interval) for n in range(200)]
    assert all(timedelta(0) <= o < interval for o in offsets)
    per_second = [sum(1 for o in offsets if k * S <= o < (k + 1) * S) for k in range(10)]
    assert min(per_second) >= 8  # roughly 20 each, never all at the top of the interval
    assert start_offset("checkout", "eu-west", interval) != start_offset(
        "checkout", "us-east", interval
    )


F, OK = False, True


@pytest.mark.parametrize(
    ("runs", "transitions", "firing_since"),
    [
        ([F, F], [Transition.NONE, Transition.NONE], None),
        ([F, F, F], [Transition.NONE] * 2 + [Transition.FIRING], 0),
        ([F, F, OK, F, F], [Transition.NONE] * 5, None),  # a success breaks the streak
        ([F, OK, F, F, F], [Transition.NONE] * 4 + [Transition.FIRING], 2),
        ([F, F, F, F, OK], [*[Transition.NONE] * 2, Transition.FIRING, *[Transition.NONE] * 2], 0),
        (
            [F, F, F, OK, OK],
            [*[Transition.NONE] * 2, Transition.FIRING, Transition.NONE, Transition.RESOLVED],
            None,
        ),
        (
            [F, F, F, OK, F, OK, OK],
            [Transition.NONE] * 2
            + [Transition.FIRING]
            + [Transition.NONE] * 3
            + [Transition.RESOLVED],
            None,
        ),
        ([OK, OK, OK], [Transition.NONE] * 3, None),
    ],
)
def test_threshold_and_recovery(
    runs: list[bool], transitions: list[Transition], firing_since: int | None
) -> None:
    health = Health()
    seen = []
    for minute, success in enumerate(runs):
        health, transition = advance(health, success, T + minute * 60 * S, 3, 2)
        seen.append(transition)
    assert seen == transitions
    expected = None if firing_since is None else T + firing_since * 60 * S
    assert health.firing_since == expected
