"""A journey breaks, fires after its threshold, opens an incident through the intake log with
the failing step as evidence on its timeline, and resolves once it passes again; the API and
the CLI show its last results. Real PostgreSQL, the shop on 127.0.0.1, the engine driven by a
fake clock."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from detector.cli import main
from detector.probes.prober import Prober
from detector.service.app import build_prober
from tests.conftest import RULES, Shop
from tests.fakes import PageReceiver
from tests.probe_shop import JOURNEY, ProbeShop

INTERVAL = timedelta(minutes=1)
SYNTHETIC_RULE = """\
rules:
  - name: checkout-journey-failing
    match: ['alertname="SyntheticCheckoutProbeFailing"']
    group_by: [journey, location]
    severity: major
    title: "Journey {{ labels.journey }} failing from {{ labels.location }}"
    summary: "{{ annotations.summary }}"
    component: checkout
    escalation_policy: oncall
"""


@pytest.fixture
async def probe_shop() -> AsyncIterator[ProbeShop]:
    shop = await ProbeShop().start()
    yield shop
    await shop.stop()


@pytest.fixture
def rules_dir(
    tmp_path: Path, pager: PageReceiver, backup: PageReceiver, probe_shop: ProbeShop
) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "shop.yml").write_text(RULES.format(pager_url=pager.url, backup_url=backup.url))
    (directory / "synthetic.yml").write_text(SYNTHETIC_RULE)
    journey = JOURNEY.format(base=probe_shop.url).replace(
        "retries: 1", "retries: 0\nfailure_threshold: 2\nsuccess_threshold: 2"
    )
    text = "journeys:\n" + textwrap.indent(journey, "  ").replace("  name:", "- name:", 1)
    (directory / "journeys.yml").write_text(text)
    return directory


async def run_next(prober: Prober, shop: Shop) -> bool:
    """Move the clock to the journey's next slot, run it, and cycle the engine."""
    shop.clock.advance(INTERVAL)
    results = await prober.run_due()
    assert len(results) == 1
    await shop.cycle()
    return results[0].success


async def test_a_broken_checkout_fires_after_its_threshold_and_recovers(
    shop: Shop, probe_shop: ProbeShop, capsys: pytest.CaptureFixture[str]
) -> None:
    prober = build_prober(shop.services)
    assert await prober.run_due() == []  # the first run waits for its slot
    assert await run_next(prober, shop)
    probe_shop.faults["pay"] = 503
    assert not await run_next(prober, shop)
    assert await shop.incidents() == []  # one failed run is below the threshold
    assert not await run_next(prober, shop)
    [incident] = await shop.incidents()
    assert incident["title"] == "Journey checkout failing from local"
    assert incident["state"] == "triggered"
    detail = await shop.incident(incident["id"])
    [evidence] = [e["detail"] for e in detail["timeline"] if e["kind"] == "probe.failed"]
    assert evidence["step"] == "pay"
    assert evidence["reason"] == "http_status"
    assert evidence["http_status"] == "503"
    assert evidence["latency"].endswith("ms")
    assert "gateway down" in evidence["body"]
    assert "pi_3Nx_secret" not in evidence["body"]
    assert "step pay: http_status, HTTP 503" in detail["summary"]

    listing = await (await shop.client.get("/api/v1/probes")).json()
    [row] = listing["journeys"]
    assert (row["journey"], row["location"], row["state"]) == ("checkout", "local", "firing")
    assert row["consecutive_failures"] == 2
    assert row["last_failure"]["steps"][2]["reason"] == "http_status"
    url = str(shop.client.make_url("")).rstrip("/")
    assert await asyncio.to_thread(main, ["probes", "--url", url]) == 0
    out = capsys.readouterr().out
    printed = out[out.index("JOURNEY") :].splitlines()  # after the service's own log lines
    assert printed[0].split() == ["JOURNEY", "LOCATION", "STATE", "LAST", "RUN", "LAST", "FAILURE"]
    assert printed[1].split()[:3] == ["checkout", "local", "firing"]
    assert printed[1].endswith("pay: http_status HTTP 503")

    probe_shop.faults.clear()
    assert await run_next(prober, shop)
    assert (await shop.incident(incident["id"]))["state"] == "triggered"
    assert await run_next(prober, shop)
    resolved = await shop.incident(incident["id"])
    assert resolved["state"] == "resolved"
    assert "probe.recovered" in [e["kind"] for e in resolved["timeline"]]

    exposition = generate_latest(shop.services.metrics.registry).decode()
    assert 'probe_success{journey="checkout",location="local"} 1.0' in exposition
    assert 'probe_http_status_code{journey="checkout",location="local",step="pay"} 200.0' in (
        exposition
    )
    assert 'phase="processing",step="pay"' in exposition
    assert "order-" not in exposition
    assert "cart-" not in exposition


async def test_switching_a_firing_journey_off_resolves_its_signal(
    shop: Shop, probe_shop: ProbeShop, rules_dir: Path
) -> None:
    prober = build_prober(shop.services)
    await prober.run_due()
    probe_shop.faults["pay"] = 503
    assert not await run_next(prober, shop)
    assert not await run_next(prober, shop)
    [incident] = await shop.incidents()
    assert incident["state"] == "triggered"

    journeys = rules_dir / "journeys.yml"
    journeys.write_text(
        journeys.read_text().replace("- name: checkout", "- name: checkout\n  enabled: false")
    )
    assert (await shop.client.post("/api/v1/rules/reload")).status == 200
    shop.clock.advance(INTERVAL)
    assert await prober.run_due() == []
    await shop.cycle()
    resolved = await shop.incident(incident["id"])
    assert resolved["state"] == "resolved"
    assert "probe.recovered" in [e["kind"] for e in resolved["timeline"]]
    listing = await (await shop.client.get("/api/v1/probes")).json()
    assert listing["journeys"] == []
