"""A run's figures as Prometheus metrics, under blackbox_exporter's names."""

from __future__ import annotations

from detector.probes.outcome import RunResult, StepStatus
from detector.service.metrics import Metrics


def record_metrics(metrics: Metrics, result: RunResult) -> None:
    """Set the journey's and each step's gauges from its last run and count failures."""
    journey, location = result.journey, result.location
    metrics.probe_success.labels(journey, location).set(1 if result.success else 0)
    metrics.probe_duration.labels(journey, location).set(result.duration_s)
    metrics.probe_runs.labels(journey, location, "success" if result.success else "failure").inc()
    for step in result.steps:
        labels = (journey, step.name, location)
        metrics.probe_step_success.labels(*labels).set(step.status is StepStatus.PASSED)
        metrics.probe_status.labels(*labels).set(step.http_status)
        for phase, seconds in step.phases.items():
            metrics.probe_phase.labels(*labels, phase).set(seconds)
        if step.reason is not None:
            metrics.probe_failures.labels(*labels, step.reason).inc()
