"""One measured run and the figures merged from its workers' tallies."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from cpu_usage import CpuUse
from load_client import SCHEDULE_SLACK_S, Tally


@dataclass(frozen=True)
class Run:
    """One measured run: a) closed loop, b) open loop, c) large groups."""

    key: str
    title: str
    mode: str
    alerts: int
    connections: int
    rate: float = 0.0


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile in milliseconds (0 for no samples)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


@dataclass
class Report:
    """The merged figures of one run against one server."""

    run: Run
    tallies: list[Tally]
    cpu: CpuUse

    @property
    def ok(self) -> int:
        """Webhooks answered 2xx."""
        return sum(t.ok for t in self.tallies)

    @property
    def elapsed(self) -> float:
        """From the common start to the last answer."""
        return max(t.finished for t in self.tallies) - min(t.started for t in self.tallies)

    @property
    def webhooks_per_s(self) -> float:
        """2xx webhooks per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def alerts_per_s(self) -> float:
        """Alerts in 2xx webhooks per second (replays included: they were stored too)."""
        return self.webhooks_per_s * self.run.alerts

    @property
    def distinct_alerts(self) -> int:
        """Distinct alerts answered 2xx; groups are disjoint across workers and runs."""
        return sum(len(t.acked_groups) for t in self.tallies) * self.run.alerts

    @property
    def failures(self) -> Counter[str]:
        """Non-2xx answers and requests whose outcome is unknown, by kind."""
        return sum((t.failures for t in self.tallies), Counter())

    @property
    def server_us_per_webhook(self) -> float | None:
        """Server process CPU per 2xx webhook: steadier than throughput on a shared machine."""
        if self.cpu.server is None or not self.ok:
            return None
        return self.cpu.server * self.cpu.wall / self.ok * 1e6

    def cpu_text(self) -> str:
        """Cores per process and machine load, as one phrase."""
        server = ""
        if self.cpu.server is not None:
            server = f"server process {self.cpu.server:.2f} cores"
            server += f" ({self.server_us_per_webhook or 0:,.0f} µs per webhook), "
        rest = self.cpu.machine * (os.cpu_count() or 1) - (self.cpu.server or 0) - self.cpu.client
        return (
            f"{server}load generator {self.cpu.client:.2f} cores, everything else "
            f"(PostgreSQL, kernel, other work) {max(0.0, rest):.2f} cores; "
            f"machine {self.cpu.machine:.0%} busy"
        )

    def latency_ms(self) -> tuple[float, float]:
        """p50 and p99 to the 2xx, from the send (closed loop) or the slot (open loop)."""
        ordered = sorted(x for t in self.tallies for x in t.latencies)
        return _percentile(ordered, 0.50), _percentile(ordered, 0.99)

    def describe(self) -> str:
        """The lines printed after the run."""
        p50, p99 = self.latency_ms()
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        lines = [
            f"  {self.webhooks_per_s:,.0f} webhooks/s, {self.alerts_per_s:,.0f} alerts/s "
            f"answered 2xx ({self.ok:,} webhooks in {self.elapsed:.2f} s); "
            f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            f"  errors: {errors}",
            f"  CPU: {self.cpu_text()}",
        ]
        if self.run.mode == "open":
            offered = sum(t.offered for t in self.tallies)
            late = sum(t.late for t in self.tallies)
            lines.append(
                f"  sent late: {late:,} of {offered:,} left more than "
                f"{SCHEDULE_SLACK_S * 1000:.0f} ms after their slot (waiting for the client or a "
                "free connection); latency runs from the slot, so the wait is in it"
            )
        return "\n".join(lines)
