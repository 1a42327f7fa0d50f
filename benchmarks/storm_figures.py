"""What ``storm.py`` measures in one run, and how it prints it beside the null receiver's figures
and the targets."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class NullFigures:
    """Alertmanager delivering to a receiver that only counts."""

    seconds: float | None
    failed: float
    unrelated: float | None  # posted to arrived
    receiver_cpu: float
    alertmanager_cpu: float
    connections: float  # opened by Alertmanager


@dataclass
class Readiness:
    """What ``/readyz`` answered twice a second while the storm lasted."""

    ready: int = 0
    not_ready: int = 0
    unanswered: int = 0  # no answer within 5 s (the connection waited to be accepted)


@dataclass(frozen=True)
class ServiceTimes:
    """What the service's own histograms say of a storm: the buckets holding the median and
    the 99th percentile of webhook answer times, and of its intake commits."""

    answer_p50: str
    answer_p99: str
    commits: int
    webhooks_per_commit: float
    commit_p50: str
    commit_p99: str

    @classmethod
    def from_metrics(cls, text: str) -> ServiceTimes:
        """Read from the service's ``/metrics`` text once the storm is over."""
        samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]
        _, answer_p50, answer_p99 = _quantiles(samples, "stormwatch_webhook_duration_seconds")
        commits, commit_p50, commit_p99 = _quantiles(samples, "stormwatch_intake_commit_seconds")
        held = sum(s.value for s in samples if s.name == "stormwatch_intake_commit_webhooks_sum")
        webhooks = held / commits if commits else 0.0
        return cls(answer_p50, answer_p99, commits, webhooks, commit_p50, commit_p99)


def _quantiles(samples: list[Sample], histogram: str) -> tuple[int, str, str]:
    """How many observations a histogram holds, and the buckets holding the median and the 99th
    percentile."""
    buckets = [(s.labels["le"], s.value) for s in samples if s.name == f"{histogram}_bucket"]
    total = buckets[-1][1] if buckets else 0.0
    p50, p99 = (
        next((f"<= {b} s" for b, n in buckets if n >= share * total), "?") for share in (0.5, 0.99)
    )
    return int(total), p50, p99


@dataclass(frozen=True)
class StormFigures:
    """Alertmanager delivering to Stormwatch; None where a step did not finish in time."""

    durable: float | None
    processed: float | None
    unrelated: float | None
    unrelated_received: float | None
    failed: float
    connections: float  # opened by Alertmanager
    readiness: Readiness
    engine_cpu: float
    intake_cpu: float
    postgres_cpu: float
    alertmanager_cpu: float
    machine_busy: float
    times: ServiceTimes


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.2f} s"


def _times(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return ""
    return f" ({value / reference:.2f}x the null receiver)"


def report(count: int, null: NullFigures, sw: StormFigures) -> str:
    """One N's figures, side by side with the null receiver and the targets."""
    per_signal = sw.engine_cpu / (count + 1) * 1e6
    ready = sw.readiness
    times = sw.times
    rows = [
        ("null receiver answered every webhook", _seconds(null.seconds), ""),
        ("  its failed webhook attempts", f"{null.failed:.0f}", ""),
        ("  connections Alertmanager opened to it", f"{null.connections:,.0f}", ""),
        (
            "  CPU s: null receiver, AM",
            f"{null.receiver_cpu:.1f}, {null.alertmanager_cpu:.1f}",
            "",
        ),
        (
            "durable in Stormwatch",
            _seconds(sw.durable) + _times(sw.durable, null.seconds),
            "<= 1.5x",
        ),
        (
            "processed by the engine",
            _seconds(sw.processed) + _times(sw.processed, null.seconds),
            "<= 3x",
        ),
        ("unrelated alert: posted to open incident", _seconds(sw.unrelated), "<= 1 s"),
        ("  of which posted to received by the intake", _seconds(sw.unrelated_received), ""),
        ("  (posted to the null receiver)", _seconds(null.unrelated), ""),
        ("Alertmanager failed webhook attempts", f"{sw.failed:.0f}", "0"),
        ("  connections it opened to the service", f"{sw.connections:,.0f}", ""),
        (
            "webhook answered in the service, p50, p99",
            f"{times.answer_p50}, {times.answer_p99}",
            "",
        ),
        (
            "  intake commits, webhooks each, p50, p99",
            f"{times.commits:,}, {times.webhooks_per_commit:.1f}, {times.commit_p50},"
            f" {times.commit_p99}",
            "",
        ),
        (
            "/readyz: 200, 503, no answer within 5 s",
            f"{ready.ready}, {ready.not_ready}, {ready.unanswered}",
            "no 503",
        ),
        ("engine CPU per alert", f"{per_signal:.0f} µs", ""),
        (
            "CPU s: engine, intake, PostgreSQL, AM",
            f"{sw.engine_cpu:.1f}, {sw.intake_cpu:.1f}, {sw.postgres_cpu:.1f},"
            f" {sw.alertmanager_cpu:.1f}",
            "",
        ),
        ("machine busy (2 cores)", f"{sw.machine_busy:.0%}", ""),
    ]
    lines = [f"N = {count:,} alerts"]
    lines += [
        f"  {name:<42} {value:<38} {'target ' + goal if goal else ''}" for name, value, goal in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def reference_spread(nulls: list[NullFigures]) -> str:
    """The null receiver run several times over: how far its own figures stray, the yardstick
    for reading the ratios to its first run."""
    answered = [null.seconds for null in nulls]
    done = [seconds for seconds in answered if seconds is not None]
    arrived = [null.unrelated for null in nulls]
    spread = f"{max(done) / min(done):.2f}x" if len(done) > 1 else "?"
    return "\n".join(
        [
            f"  null receiver, {len(nulls)} runs: answered every webhook after "
            + ", ".join(_seconds(seconds) for seconds in answered)
            + f"; the slowest {spread} the quickest",
            "    the unrelated alert reached it after "
            + ", ".join(_seconds(seconds) for seconds in arrived),
        ]
    )
