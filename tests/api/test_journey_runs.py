"""Step semantics against a shop on 127.0.0.1: what passes, what fails and why, what is skipped,
what cleanup still does, and what each request carried."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from detector.probes.journey import JourneySpec
from detector.probes.outcome import FailureReason, Phase, RunResult, StepStatus
from detector.probes.runner import JourneyRunner
from detector.probes.timings import timed_ssl_context
from tests.probe_shop import JOURNEY, ProbeShop

P, F, S = StepStatus.PASSED, StepStatus.FAILED, StepStatus.SKIPPED
STARTED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def journey(base: str, **changes: Any) -> JourneySpec:
    data = yaml.safe_load(JOURNEY.format(base=base))
    data.update(changes)
    return JourneySpec.model_validate(data)


def verdicts(result: RunResult) -> list[tuple[str, StepStatus, FailureReason | None]]:
    return [(step.name, step.status, step.reason) for step in result.steps]


@pytest.fixture
async def shop() -> AsyncIterator[ProbeShop]:
    shop = await ProbeShop().start()
    yield shop
    await shop.stop()


@pytest.fixture
def runner() -> JourneyRunner:
    return JourneyRunner("eu-west", timed_ssl_context())


async def test_a_healthy_checkout_passes_every_step_and_marks_each_request(
    shop: ProbeShop, runner: JourneyRunner
) -> None:
    result = await runner.run(journey(shop.url), "run-1", STARTED)
    assert verdicts(result) == [
        ("product", P, None),
        ("cart", P, None),
        ("pay", P, None),
        ("confirmation", P, None),
        ("cancel_order", P, None),
        ("empty_cart", P, None),
    ]
    assert result.success
    assert result.failed_step is None
    keys = [headers["Idempotency-Key"] for _, _, headers in shop.requests]
    assert keys == [f"run-1:{step.name}" for step in result.steps]
    assert {headers["X-Stormwatch-Synthetic"] for _, _, headers in shop.requests} == {"1"}
    assert shop.requests[2][1] == "/cart/cart-1/pay"  # the extracted id, and the cookie (401 else)
    assert shop.cancelled == ["order-2", "cart-1"]
    assert set(result.steps[0].phases) >= {Phase.RESOLVE, Phase.CONNECT, Phase.PROCESSING}
    assert Phase.TRANSFER in result.steps[0].phases
    assert Phase.CONNECT not in result.steps[1].phases  # the same connection, kept alive


FAULTS = [
    pytest.param(
        {"pay": 503},
        [
            ("pay", F, FailureReason.HTTP_STATUS),
            ("confirmation", S, None),
            ("cancel_order", S, None),
            ("empty_cart", P, None),
        ],
        id="gateway-down-retried-then-cleanup",
    ),
    pytest.param(
        {"pay": 402},
        [
            ("pay", F, FailureReason.HTTP_STATUS),
            ("confirmation", S, None),
            ("cancel_order", S, None),
            ("empty_cart", P, None),
        ],
        id="declined-not-retried",
    ),
    pytest.param(
        {"pay_status": "declined"},
        [
            ("pay", F, FailureReason.ASSERTION),
            ("confirmation", S, None),
            ("cancel_order", S, None),
            ("empty_cart", P, None),
        ],
        id="assertion",
    ),
    pytest.param(
        {"pay_delay": 1.0},
        [
            ("pay", F, FailureReason.TIMEOUT),
            ("confirmation", S, None),
            ("cancel_order", S, None),
            ("empty_cart", P, None),
        ],
        id="step-timeout",
    ),
    pytest.param(
        {"cart_without_id": True},
        [
            ("cart", F, FailureReason.EXTRACTION),
            ("pay", S, None),
            ("confirmation", S, None),
            ("cancel_order", S, None),
            ("empty_cart", S, None),
        ],
        id="failed-extraction-skips-what-needs-it",
    ),
]


@pytest.mark.parametrize(("faults", "expected"), FAULTS)
async def test_a_failure_has_one_reason_later_steps_are_skipped_and_cleanup_runs(
    shop: ProbeShop,
    runner: JourneyRunner,
    faults: dict[str, Any],
    expected: list[tuple[str, StepStatus, FailureReason | None]],
) -> None:
    shop.faults.update(faults)
    result = await runner.run(journey(shop.url), "run-2", STARTED)
    first = next(name for name, *_ in expected)
    names = [step.name for step in result.steps]
    assert verdicts(result)[names.index(first) :] == expected
    assert all(v[1] is P for v in verdicts(result)[: names.index(first)])
    assert not result.success
    assert result.failed_step is not None
    assert result.failed_step.name == first


async def test_transient_failures_are_retried_with_the_same_idempotency_key(
    shop: ProbeShop, runner: JourneyRunner
) -> None:
    shop.faults["pay"] = 503
    result = await runner.run(journey(shop.url), "run-3", STARTED)
    pay = result.steps[2]
    assert (pay.attempts, shop.faults["pay_attempts"]) == (2, 2)
    keys = [h["Idempotency-Key"] for _, path, h in shop.requests if path.endswith("/pay")]
    assert keys == ["run-3:pay", "run-3:pay"]


async def test_the_failed_answer_is_kept_trimmed_with_secrets_redacted(
    shop: ProbeShop, runner: JourneyRunner
) -> None:
    shop.faults["pay"] = 503
    pay = (await runner.run(journey(shop.url), "run-4", STARTED)).steps[2]
    assert pay.http_status == 503
    assert pay.detail == "status 503, want 200"
    assert "gateway down" in pay.body
    assert "pi_3Nx_secret" not in pay.body
    assert "tok_visa" not in pay.body
    assert pay.body.count("[redacted]") == 2
    assert pay.latency_s > 0


async def test_the_journey_timeout_ends_the_run_but_not_its_cleanup(
    shop: ProbeShop, runner: JourneyRunner
) -> None:
    shop.faults["product_delay"] = 1.5
    result = await runner.run(journey(shop.url, timeout="1s", step_timeout="2s"), "run-5", STARTED)
    assert verdicts(result) == [
        ("product", F, FailureReason.TIMEOUT),
        ("cart", S, None),
        ("pay", S, None),
        ("confirmation", S, None),
        ("cancel_order", S, None),
        ("empty_cart", S, None),
    ]
    assert result.duration_s < 1.5


@pytest.mark.parametrize(
    ("base", "reason"),
    [
        pytest.param("http://127.0.0.1:9", FailureReason.CONNECT, id="refused"),
        pytest.param("http://shop.invalid", FailureReason.DNS, id="unknown-host"),
    ],
)
async def test_no_answer_at_all(runner: JourneyRunner, base: str, reason: FailureReason) -> None:
    result = await runner.run(journey(base, retries=0), "run-6", STARTED)
    assert verdicts(result)[0] == ("product", F, reason)
    assert [v[1] for v in verdicts(result)[1:]] == [S] * 5


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


async def test_a_certificate_the_prober_does_not_trust_fails_with_tls(
    authority: trustme.CA, tmp_path: Path
) -> None:
    shop = await ProbeShop(_server_ssl(authority)).start()
    try:
        untrusting = JourneyRunner("eu-west", timed_ssl_context())
        result = await untrusting.run(journey(shop.url, retries=0), "run-7", STARTED)
        assert verdicts(result)[0] == ("product", F, FailureReason.TLS)
        assert "certificate" in result.steps[0].detail.lower()
        ca_file = tmp_path / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        trusting = JourneyRunner("eu-west", timed_ssl_context(str(ca_file)))
        result = await trusting.run(journey(shop.url), "run-8", STARTED)
        assert result.success, verdicts(result)
        assert result.steps[0].phases[Phase.TLS] > 0
        assert result.steps[0].phases[Phase.CONNECT] >= 0
    finally:
        await shop.stop()


def _server_ssl(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context
