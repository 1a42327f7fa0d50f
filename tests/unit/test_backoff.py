"""Outbox retry backoff: doubling from initial_delay, capped, jittered, then give up."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from detector.ruleset.channel_specs import RetrySpec
from detector.store.outbox import backoff

SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)


def policy(**overrides: object) -> RetrySpec:
    """A channel's retry block as a rule file would write it."""
    return RetrySpec.model_validate(
        {"max_attempts": 8, "initial_delay": "10s", "max_delay": "1m", **overrides}
    )


def rng(seed: int = 7) -> random.Random:
    return random.Random(seed)  # seeded so every run sees the same jitter


class TestBackoff:
    @pytest.mark.parametrize(
        ("attempts", "base"),
        [
            pytest.param(1, 10 * SEC, id="first retry waits initial_delay"),
            pytest.param(2, 20 * SEC, id="doubles"),
            pytest.param(3, 40 * SEC, id="doubles again"),
            pytest.param(4, MIN, id="capped at max_delay"),
            pytest.param(7, MIN, id="stays capped"),
        ],
    )
    def test_delay_within_twenty_percent_of_base(self, attempts: int, base: timedelta) -> None:
        generator = rng()
        results = [backoff(policy(), attempts, generator) for _ in range(200)]
        delays = [delay for delay in results if delay is not None]

        assert len(delays) == len(results)
        assert min(delays) >= base * 0.8
        assert max(delays) <= base * 1.2
        assert len(set(delays)) > 100, "jitter spreads retries"

    @pytest.mark.parametrize(
        ("max_attempts", "attempts"),
        [
            pytest.param(8, 8, id="at max_attempts"),
            pytest.param(8, 9, id="past max_attempts"),
            pytest.param(1, 1, id="single attempt never retries"),
        ],
    )
    def test_gives_up_once_attempts_reach_max(self, max_attempts: int, attempts: int) -> None:
        assert backoff(policy(max_attempts=max_attempts), attempts, rng()) is None

    def test_last_retry_before_giving_up_still_has_a_delay(self) -> None:
        assert backoff(policy(max_attempts=8), 7, rng()) is not None

    def test_same_seed_gives_same_delays(self) -> None:
        first, second = rng(3), rng(3)

        assert [backoff(policy(), n, first) for n in range(1, 8)] == [
            backoff(policy(), n, second) for n in range(1, 8)
        ]

    @pytest.mark.parametrize("attempts", [45, 99])
    def test_many_attempts_stay_capped(self, attempts: int) -> None:
        retry = policy(max_attempts=100, initial_delay="5s", max_delay="5m")

        delay = backoff(retry, attempts, rng())

        assert delay is not None
        assert 4 * MIN <= delay <= 6 * MIN
