"""A journey's signal: read back from the intake log as source ``probe``, routed by the shipped
rules like the blackbox alert of the same name, and its evidence on the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector.domain.model import AlertState, AlertStatus, Decision, Source
from detector.domain.reasons import DecisionReason
from detector.intake.alertmanager import log_record, signals_from_record
from detector.probes.alert import log_entry, probe_labels, with_evidence
from detector.probes.outcome import FailureReason, RunResult, StepResult, StepStatus
from detector.probes.thresholds import Transition
from detector.ruleset.loader import load_ruleset

RULES = Path(__file__).resolve().parents[2] / "rules"
T = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def failed_run(location: str = "eu-west") -> RunResult:
    return RunResult(
        journey="demo-shop-checkout",
        location=location,
        run_id="4f1c",
        started_at=T,
        duration_s=0.3,
        steps=(
            StepResult("product", StepStatus.PASSED, http_status=200, latency_s=0.01),
            StepResult(
                "pay",
                StepStatus.FAILED,
                FailureReason.HTTP_STATUS,
                "status 503, want 200",
                http_status=503,
                latency_s=0.125,
                body='{"error": "gateway down", "client_secret": "[redacted]"}',
            ),
            StepResult("confirmation", StepStatus.SKIPPED, detail="an earlier step failed"),
        ),
    )


def test_a_firing_journey_is_read_back_as_a_probe_signal_and_resolves_with_the_same_start() -> None:
    journey = load_ruleset(RULES).journeys["demo-shop-checkout"]
    since = T - timedelta(minutes=1)
    firing = log_entry(journey, Transition.FIRING, since, failed_run(), T)
    resolved = log_entry(
        journey, Transition.RESOLVED, since, failed_run(), T + timedelta(minutes=3)
    )
    first, second = signals_from_record(log_record([firing, resolved]))
    assert (first.source, first.status, first.starts_at) == (
        Source.PROBE,
        AlertStatus.FIRING,
        since,
    )
    assert (second.status, second.starts_at) == (AlertStatus.RESOLVED, since)
    assert first.fingerprint == second.fingerprint
    assert first.labels == {
        "alertname": "SyntheticCheckoutProbeFailing",
        "severity": "page",
        "cluster": "shop-prod",
        "journey": "demo-shop-checkout",
        "instance": "demo-shop-checkout",
        "location": "eu-west",
    }
    assert first.annotations["step"] == "pay"
    assert first.annotations["summary"] == (
        "Journey demo-shop-checkout fails from eu-west at step pay: http_status, HTTP 503"
        " (status 503, want 200) after 125ms."
    )


def test_the_shipped_synthetic_rules_match_journey_signals() -> None:
    rules = load_ruleset(RULES)
    journey = rules.journeys["demo-shop-checkout"]
    entry = log_entry(journey, Transition.FIRING, T, failed_run(), T)
    [signal] = signals_from_record(log_record([entry]))
    routed = {match.rule.name: dict(match.group_labels) for match in rules.route(signal)}
    assert routed == {
        "synthetic-checkout-failing": {"cluster": "shop-prod", "instance": "demo-shop-checkout"},
        "synthetic-checkout-failing-widely": {"cluster": "shop-prod"},
        "synthetic-checkout-failing-from-locations": {
            "cluster": "shop-prod",
            "journey": "demo-shop-checkout",
        },
    }
    assert probe_labels(journey, "us-east")["location"] == "us-east"


def test_evidence_goes_on_the_timeline_only_for_signals_the_decision_attaches() -> None:
    journey = load_ruleset(RULES).journeys["demo-shop-checkout"]
    [signal] = signals_from_record(
        log_record([log_entry(journey, Transition.FIRING, T, failed_run(), T)])
    )
    attached = AlertState(
        signal.fingerprint, signal.starts_at, signal.status, None, signal.labels, T
    )
    decision = Decision(DecisionReason.OPENED, changed_alerts=(attached,))
    [entry] = with_evidence(decision, [signal], T).timeline
    assert entry.kind == "probe.failed"
    assert entry.detail == {
        "journey": "demo-shop-checkout",
        "location": "eu-west",
        "run": "4f1c",
        "step": "pay",
        "reason": "http_status",
        "http_status": "503",
        "latency": "125ms",
        "detail": "status 503, want 200",
        "body": '{"error": "gateway down", "client_secret": "[redacted]"}',
    }
    assert with_evidence(Decision(DecisionReason.OPENED), [signal], T).timeline == ()
