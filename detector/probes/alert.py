"""A journey's signal, written to the intake log as an Alertmanager-shaped entry (source
``probe``) so that it is deduplicated, routed, held by conditions and attached like any alert.

Labels come from configuration only (journey, location, the journey's ``labels``), never from a
run, so one journey failing at one location is one alert whose fingerprint stays put; what the
run found (failing step, status, latency, reason, the start of the answer) goes in annotations,
which the incident's timeline shows as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from detector.domain.model import AlertStatus, Decision, Signal, Source, TimelineEntry
from detector.intake.alertmanager import fingerprint_of
from detector.probes.journey import JourneySpec
from detector.probes.outcome import RunResult, StepResult
from detector.probes.thresholds import Transition

ALERTNAME = "SyntheticCheckoutProbeFailing"
"""The alert name blackbox_exporter's checkout alert has, so the same rules match both."""
EVIDENCE_KEYS = (
    "journey",
    "location",
    "run",
    "step",
    "reason",
    "http_status",
    "latency",
    "detail",
    "body",
)


def probe_labels(journey: JourneySpec, location: str) -> dict[str, str]:
    """The labels of a journey's signal at one location."""
    return {
        "alertname": ALERTNAME,
        **journey.labels,
        "journey": journey.name,
        "instance": journey.name,
        "location": location,
    }


def evidence(result: RunResult) -> dict[str, str]:
    """What a failed run shows on the timeline: its first failed step and what it saw."""
    step = result.failed_step
    found = {"journey": result.journey, "location": result.location, "run": result.run_id}
    if step is None:
        return found
    return found | _step_evidence(step)


def _step_evidence(step: StepResult) -> dict[str, str]:
    return {
        "step": step.name,
        "reason": str(step.reason or ""),
        "http_status": str(step.http_status or ""),
        "latency": f"{step.latency_s * 1000:.0f}ms",
        "detail": step.detail,
        "body": step.body,
    }


def summary(result: RunResult) -> str:
    """One line for people: which step failed, why, where."""
    step = result.failed_step
    if step is None:
        return f"Journey {result.journey} passes again from {result.location}."
    status = f", HTTP {step.http_status}" if step.http_status else ""
    return (
        f"Journey {result.journey} fails from {result.location} at step {step.name}: "
        f"{step.reason}{status} ({step.detail}) after {step.latency_s * 1000:.0f}ms."
    )


def log_entry(
    journey: JourneySpec,
    transition: Transition,
    since: datetime,
    result: RunResult,
    now: datetime,
) -> bytes:
    """The intake log entry for a transition: the firing alert (starting when the journey began
    failing), or its resolution (same start, ending now)."""
    annotations: Mapping[str, str] = {"summary": summary(result), **evidence(result)}
    if journey.description:
        annotations = {**annotations, "description": journey.description}
    labels = probe_labels(journey, result.location)
    ends_at = None if transition is Transition.FIRING else now
    return _entry(labels, annotations, since, ends_at, now)


def retired_entry(labels: Mapping[str, str], since: datetime, now: datetime) -> bytes:
    """The resolution of a firing journey that is no longer run (removed or switched off): its
    incident would otherwise wait for a run that never comes."""
    summary = f"Journey {labels.get('journey', '')} is no longer run: its signal is resolved."
    annotations = {
        "summary": summary,
        "journey": labels.get("journey", ""),
        "location": labels.get("location", ""),
    }
    return _entry(labels, annotations, since, now, now)


def _entry(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    since: datetime,
    ends_at: datetime | None,
    now: datetime,
) -> bytes:
    status = AlertStatus.FIRING if ends_at is None else AlertStatus.RESOLVED
    alert = {
        "status": status,
        "labels": dict(labels),
        "annotations": dict(annotations),
        "startsAt": since.isoformat(),
        "endsAt": None if ends_at is None else ends_at.isoformat(),
        "fingerprint": fingerprint_of(dict(labels)),
    }
    payload = {
        "version": "4",
        "status": status,
        "receiver": "stormwatch-probes",
        "groupKey": f"probe:{labels.get('journey', '')}:{labels.get('location', '')}",
        "alerts": [alert],
    }
    entry = {"received_at": now.isoformat(), "source": Source.PROBE, "payload": payload}
    return json.dumps(entry).encode()


def with_evidence(decision: Decision, signals: Sequence[Signal], now: datetime) -> Decision:
    """The decision with a timeline entry per journey signal it attaches: ``probe.failed`` with
    the evidence, or ``probe.recovered``."""
    attached = {alert.occurrence for alert in decision.changed_alerts}
    entries = tuple(
        _timeline_entry(signal, now)
        for signal in signals
        if signal.source is Source.PROBE and signal.occurrence in attached
    )
    return replace(decision, timeline=decision.timeline + entries) if entries else decision


def _timeline_entry(signal: Signal, now: datetime) -> TimelineEntry:
    found = {key: signal.annotations[key] for key in EVIDENCE_KEYS if key in signal.annotations}
    if signal.status is AlertStatus.FIRING:
        return TimelineEntry("probe.failed", now, found)
    return TimelineEntry(
        "probe.recovered", now, {key: found.get(key, "") for key in ("journey", "location")}
    )
