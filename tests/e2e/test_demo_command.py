"""``stormwatch demo`` end to end, as a newcomer runs it: one process, its own data directory
and ports, the whole story from fault to report within two minutes, exit 0, and a summary of
the measured times beside the status page and report it produced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.tools import tool

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_tells_the_whole_story(tmp_path: Path) -> None:
    tool("prometheus")  # the impact estimate is part of the story where Prometheus is installed
    output = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = subprocess.run(
        [sys.executable, "-m", "detector", "demo", "--output", str(output)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    out = finished.stdout
    for step in (
        "Fault injected: payment-down",
        "The checkout journey fails",
        "An incident opens",
        "The on-call person is paged",
        "ack link: http://127.0.0.1:",
        "status page (open it now): http://127.0.0.1:",
        "The on-call person acknowledges through the link",
        "Customers are told it is fixed",
        "Measured times",
    ):
        assert step in out, step
    summary = json.loads((output / "summary.json").read_text())
    measured = summary["measured_seconds"]
    assert set(measured) == {
        "detect",
        "page",
        "first_notice",
        "acknowledge",
        "resolve",
        "incident_open",
    }
    assert all(value is not None and 0 <= value < 60 for value in measured.values()), measured
    assert summary["impact"].startswith("about ")
    assert summary["mails"] >= 3  # confirmation, first notice, resolution to the subscriber
    status = (output / "status.html").read_text()
    assert "Checkout" in status
    assert "resolved" in status.lower()
    report = (output / "report.md").read_text()
    assert report.startswith("# Post-incident report: #1 Checkout journey failing (demo)")
    assert "| State | resolved |" in report
    assert "acknowledged_by" not in report
    assert "by demo-oncall" in report
    assert "`probe.failed`" in report
    assert "\n## Root cause\n" in report
    assert "<polyline" in (output / "report.html").read_text()
