"""Prometheus metrics with one registry per app, so tests start from zero.

Labels stay low-cardinality: rule names, channels, outcomes; never incident ids or alert labels.
When ``stormwatch serve`` runs the engine in its own process, both processes write their values
to a shared directory and ``/metrics`` adds them up (prometheus_client's multiprocess mode); each
gauge says how its per-process values combine.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from detector.domain.model import Decision, Source
from detector.domain.reasons import DecisionReason

_SHARED_DIR = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_LAG_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900)
_DRIFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class Metrics:
    """Every metric the service exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._intake(self.registry)
        self._incidents(self.registry)
        self._engine(self.registry)
        self._rules(self.registry)
        self._health(self.registry)
        self._probes(self.registry)
        self._notices(self.registry)
        self._escalation(self.registry)

    def _escalation(self, r: CollectorRegistry) -> None:
        """Paging people: steps, acks, and the checks that keep escalation from stalling."""
        self.escalations = Counter(
            "stormwatch_escalations_total",
            "Escalation steps that paged someone, by step (0: the first page).",
            ["step"],
            registry=r,
        )
        self.escalation_nobody_on_call = Counter(
            "stormwatch_escalation_nobody_on_call_total",
            "Escalation steps that reached nobody (passed over at once).",
            registry=r,
        )
        self.time_to_acknowledge = Histogram(
            "stormwatch_time_to_acknowledge_seconds",
            "Seconds from an incident opening to its acknowledgement, by severity.",
            ["severity"],
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200),
            registry=r,
        )
        self.audit_repairs = Counter(
            "stormwatch_audit_repairs_total",
            "Missing timers the self-audit found on open incidents and scheduled again.",
            ["problem"],
            registry=r,
        )
        self.deadman_pings = Counter(
            "stormwatch_deadman_pings_total",
            "Dead-man pings to the external checker, by outcome (ok, failed).",
            ["outcome"],
            registry=r,
        )

    def acknowledged(self, decision: Decision) -> None:
        """Observe how long an incident waited for the acknowledgement ``decision`` applied
        (from its opening; nothing for an ack that changed nothing)."""
        incident = decision.incident
        if decision.reason is not DecisionReason.ACKNOWLEDGED or incident is None:
            return
        waited = (incident.acknowledged_at or incident.opened_at) - incident.opened_at
        self.time_to_acknowledge.labels(incident.severity).observe(waited.total_seconds())

    def intake_committed(self, seconds: float, webhooks: int) -> None:
        """Count one intake commit: how long it took and how many webhooks it held."""
        self.intake_commit.observe(seconds)
        self.intake_commit_webhooks.observe(webhooks)

    def _notices(self, r: CollectorRegistry) -> None:
        """What customers were told, and whether each promised update came on time."""
        self.notice_first_seconds = Histogram(
            "stormwatch_notice_first_seconds",
            "Seconds from an incident opening to its first public notice.",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.notice_updates = Counter(
            "stormwatch_notice_updates_total",
            "Public updates that followed a promise, by punctuality (late: a broken promise).",
            ["punctuality"],
            registry=r,
        )
        self.notice_holding_updates = Counter(
            "stormwatch_notice_holding_updates_total",
            "Holding updates published because nobody wrote one by the promised time.",
            registry=r,
        )
        self.subscriber_deliveries = Counter(
            "stormwatch_subscriber_deliveries_total",
            "Attempts to deliver to subscribers, by channel (email, webhook) and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self.notice_reminders = Counter(
            "stormwatch_notice_reminders_total",
            "Reminders to the incident commander that a public update is due soon.",
            registry=r,
        )

    def _intake(self, r: CollectorRegistry) -> None:
        """Webhooks and the alerts they carry."""
        self.webhooks = Counter(
            "stormwatch_webhooks_total", "Webhook requests by outcome.", ["outcome"], registry=r
        )
        self.intake_alerts = Counter(
            "stormwatch_intake_alerts_total",
            "Alerts in webhooks answered 2xx: durable in the intake log, not yet deduplicated.",
            ["source"],
            registry=r,
        )
        self.truncated_alerts = Counter(
            "stormwatch_webhook_truncated_alerts_total",
            "Alerts Alertmanager left out of webhooks (truncatedAlerts, its max_alerts setting).",
            registry=r,
        )
        self.signals_received = Counter(
            "stormwatch_signals_received_total",
            "Alerts received, by source and outcome (accepted, duplicate, rejected).",
            ["source", "outcome"],
            registry=r,
        )
        self.signals_processed = Counter(
            "stormwatch_signals_processed_total",
            "Stored signals processed by the engine, by outcome (matched, unmatched, error).",
            ["outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "stormwatch_webhook_duration_seconds",
            "Time from receiving a webhook to answering it after commit.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.intake_commit = Histogram(
            "stormwatch_intake_commit_seconds",
            "Time to write one batch of webhooks to the intake log and commit it; every webhook "
            "of the batch waits this long for its answer, after the commit before it.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.intake_commit_webhooks = Histogram(
            "stormwatch_intake_commit_webhooks",
            "Webhooks per intake commit: one when idle, more as requests arrive during commits.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        # Every accepted webhook counts in these two: looked up once, not per request.
        self.webhooks_accepted = self.webhooks.labels("accepted")
        self.alertmanager_alerts = self.intake_alerts.labels(Source.ALERTMANAGER)

    def _incidents(self, r: CollectorRegistry) -> None:
        """Incidents and the pages sent about them."""
        self.incidents_opened = Counter(
            "stormwatch_incidents_opened_total",
            "Incidents opened.",
            ["rule", "severity"],
            registry=r,
        )
        self.incidents_resolved = Counter(
            "stormwatch_incidents_resolved_total",
            "Incidents resolved.",
            ["rule", "severity"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "stormwatch_incidents_open",
            "Open incidents by state.",
            ["state"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.deliveries = Counter(
            "stormwatch_deliveries_total",
            "Delivery attempts by channel and outcome"
            " (delivered, retry, dead, superseded, lease_lost).",
            ["channel", "outcome", "reason"],
            registry=r,
        )
        self.notifications = Counter(
            "stormwatch_notifications_total",
            "Pages and their updates by channel type (webhook, slack, email, pagerduty)"
            " and outcome (delivered, retry, dead).",
            ["channel_type", "outcome"],
            registry=r,
        )
        self.pages_bundled = Counter(
            "stormwatch_pages_bundled_total",
            "Pages to a person bundled into a digest during a storm instead of sent one by one.",
            registry=r,
        )

    def _engine(self, r: CollectorRegistry) -> None:
        """Timers, engine cycles and Alertmanager reconciliation."""
        self.timer_lag = Histogram(
            "stormwatch_timer_lag_seconds",
            "How late a timer was when claimed (now - due_at).",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.timers_fired = Counter(
            "stormwatch_timers_fired_total",
            "Timers fired by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.engine_cycle = Histogram(
            "stormwatch_engine_cycle_seconds", "Duration of one engine cycle.", registry=r
        )
        self.engine_stage = Histogram(
            "stormwatch_engine_stage_seconds",
            "Duration of one engine stage within a cycle, failed runs included.",
            ["stage"],
            registry=r,
        )
        self.condition_dropped = Counter(
            "stormwatch_condition_dropped_total",
            "Waiting alerts a rule condition let go without releasing them, by rule and reason"
            " (left_window: a threshold arrival left the window; over_limit: the group held"
            " its most, the earliest left).",
            ["rule", "reason"],
            registry=r,
        )
        self.engine_errors = Counter(
            "stormwatch_engine_errors_total",
            "Engine failures by stage: a stage that failed, or one timer that failed in it.",
            ["stage"],
            registry=r,
        )
        self.reconcile_runs = Counter(
            "stormwatch_reconcile_runs_total",
            "Reconciliations with Alertmanager, by outcome (ok, fetch_failed, ...).",
            ["outcome"],
            registry=r,
        )
        self.reconciled_alerts = Counter(
            "stormwatch_reconciled_alerts_total",
            "Alerts resolved because they were gone from Alertmanager.",
            registry=r,
        )
        self.reconcile_adopted = Counter(
            "stormwatch_reconcile_adopted_alerts_total",
            "Stored unmatched alerts handed to the engine because a rule routes them now and "
            "Alertmanager still lists them.",
            registry=r,
        )

    def _rules(self, r: CollectorRegistry) -> None:
        """The running rule set and its reloads."""
        self.rules_reload_success = Gauge(
            "stormwatch_rules_last_reload_success",
            "1 if the last load of the rules directory succeeded, 0 if it was rejected.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.rules_reload_time = Gauge(
            "stormwatch_rules_last_reload_timestamp_seconds",
            "When the rules directory was last loaded or rejected.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.rules_reloads = Counter(
            "stormwatch_rules_reloads_total", "Rule reloads by outcome.", ["outcome"], registry=r
        )
        self.rules_loaded = Gauge(
            "stormwatch_rules_loaded",
            "Rules in the running rule set.",
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def _health(self, r: CollectorRegistry) -> None:
        """Whether the service itself is keeping up: what its own alerts watch."""
        self.oldest_unprocessed_age = Gauge(
            "stormwatch_oldest_unprocessed_signal_age_seconds",
            "How long the oldest alert still waiting for the engine (in the intake log, stored "
            "and queued, or in a rule group's backlog) has waited since it was received; 0 when "
            "none waits.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.signals_waiting = Gauge(
            "stormwatch_signals_waiting",
            "Alerts waiting for the engine: in the intake log, stored and queued, or in a rule "
            "group's backlog (a group applies at most a slice of its alerts per cycle).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.oldest_unsent_page_age = Gauge(
            "stormwatch_oldest_unsent_page_age_seconds",
            "How long the longest-waiting outbox message that is due (its first attempt or a "
            "retry) has waited since it fell due; 0 when none is due.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.readiness_check = Gauge(
            "stormwatch_readiness_check",
            "1 if the readiness check passed when /readyz or /metrics last ran it, else 0"
            " (database, engine, rules; a check that does not apply here is left out).",
            ["check"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def _probes(self, r: CollectorRegistry) -> None:
        """Synthetic journeys, under blackbox_exporter's names so its dashboards and alerts
        apply; labels from configuration only (journey, step, location), never run values."""
        journey = ["journey", "location"]
        step = ["journey", "step", "location"]
        self.probe_success = Gauge(
            "probe_success",
            "1 if the journey's last run passed.",
            journey,
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.probe_duration = Gauge(
            "probe_duration_seconds",
            "How long the journey's last run took.",
            journey,
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.probe_status = Gauge(
            "probe_http_status_code",
            "The status of the step's last answer (0: none).",
            step,
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.probe_phase = Gauge(
            "probe_http_duration_seconds",
            "The step's last request by phase (resolve, connect, tls, processing, transfer).",
            [*step, "phase"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.probe_step_success = Gauge(
            "probe_step_success",
            "1 if the step passed in the last run (skipped: 0).",
            step,
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.probe_failures = Counter(
            "probe_failures_total",
            "Failed steps by reason.",
            [*step, "reason"],
            registry=r,
        )
        self.probe_runs = Counter(
            "stormwatch_probe_runs_total",
            "Journey runs by outcome (success, failure).",
            [*journey, "outcome"],
            registry=r,
        )
        self.probe_start_delay = Histogram(
            "stormwatch_probe_start_delay_seconds",
            "How late a journey run started after its slot (schedule drift).",
            buckets=_DRIFT_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text ``/metrics`` serves: this registry, or every process's values when shared."""
        directory = os.environ.get(_SHARED_DIR)
        if not directory:
            return generate_latest(self.registry)
        shared = CollectorRegistry()
        MultiProcessCollector(shared, directory)  # type: ignore[no-untyped-call] # untyped upstream
        return generate_latest(shared)


def share_across_processes(directory: Path) -> None:
    """Make metrics created from now on (here and in child processes) write to ``directory``.

    Call before any :class:`Metrics` exists; the directory must be empty and private to this run.
    """
    os.environ[_SHARED_DIR] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call] # untyped upstream
