"""The service's intake counters in /metrics against the 2xx answers the client received."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from run_figures import Report
from servers import get


def counters(url: str) -> dict[str, float]:
    """Alertmanager signals by intake outcome, ``logged`` (alerts answered 2xx, not yet
    expanded by the engine) and ``processed`` (all engine outcomes)."""
    status, text = get(url, "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stormwatch_signals_received_total" and (
                sample.labels.get("source") == "alertmanager"
            ):
                outcome = sample.labels["outcome"]
                values[outcome] = values.get(outcome, 0.0) + sample.value
            elif sample.name == "stormwatch_intake_alerts_total":
                values["logged"] = values.get("logged", 0.0) + sample.value
            elif sample.name == "stormwatch_signals_processed_total":
                values["processed"] = values.get("processed", 0.0) + sample.value
    return values


def wait_for_engine(url: str, timeout: float) -> str:
    """Let the engine work off the stored backlog, so the next run does not compete with it.

    The backlog is alerts in the intake log not yet expanded plus new signals not yet processed.
    """
    started_at = time.monotonic()
    backlog = _backlog(counters(url))
    while time.monotonic() - started_at < timeout:
        if _backlog(counters(url)) <= 0:
            waited = time.monotonic() - started_at
            return f"engine backlog of {backlog:,.0f} alerts worked off in {waited:.1f} s"
        time.sleep(0.25)
    return f"engine backlog not processed within {timeout:.0f} s (runs may overlap with it)"


def _backlog(values: dict[str, float]) -> float:
    accepted = values.get("accepted", 0)
    unexpanded = values.get("logged", 0) - accepted - values.get("duplicate", 0)
    return unexpanded + accepted - values.get("processed", 0)


@dataclass(frozen=True)
class Check:
    """One counter's delta in /metrics against what the client knows it had stored."""

    counter: str
    got: float
    expected: int
    meaning: str


@dataclass(frozen=True)
class Verdict:
    """Every check, and how many requests had an outcome the client could not know."""

    checks: tuple[Check, ...]
    unknown: int

    @property
    def ok(self) -> bool:
        """Every counter exactly as expected, and something was stored to check at all."""
        return self.checks[0].expected > 0 and all(c.got == c.expected for c in self.checks)

    @property
    def word(self) -> str:
        """OK or MISMATCH."""
        return "OK" if self.ok else "MISMATCH"

    @property
    def names(self) -> str:
        """The counters, as the summary table names them."""
        return " / ".join(c.counter for c in self.checks)

    @property
    def values(self) -> str:
        """Their deltas, in the same order."""
        return " / ".join(f"{c.got:,.0f}" for c in self.checks)

    def describe(self) -> str:
        """One line per counter plus the verdict."""
        verdict = self.word
        if not self.ok and self.unknown:
            verdict += f" ({self.unknown} requests had an unknown outcome)"
        width = max(len(c.counter) for c in self.checks)
        lines = [
            f"  {c.counter:<{width}} {c.got:,.0f} ({c.meaning}: {c.expected:,})"
            for c in self.checks
        ]
        return "\n".join([*lines, f"  durability: {verdict}"])


def verify(url: str, before: dict[str, float], reports: list[Report], engine: bool) -> Verdict:
    """Compare the service's counters with the 2xx answers the client received.

    With an engine, its deduplicated outcomes must match exactly; without one (an intake
    replica) the alerts logged must match the alerts answered 2xx.
    """
    after = counters(url)
    distinct = sum(r.distinct_alerts for r in reports)
    answered = sum(r.ok * r.run.alerts for r in reports)
    unknown = sum(v for r in reports for k, v in r.failures.items() if "unknown" in k)

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    if not engine:
        logged = Check("logged", delta("logged"), answered, "alerts answered 2xx")
        return Verdict((logged,), unknown)
    return Verdict(
        (
            Check("accepted", delta("accepted"), distinct, "distinct alerts answered 2xx"),
            Check(
                "duplicate", delta("duplicate"), answered - distinct, "replayed alerts answered 2xx"
            ),
        ),
        unknown,
    )
