"""An alert storm through the real service and database, driven by a fake clock.

5,000 saturated pools of one cluster (20 databases) arrive while an all_of rule waits for
checkout errors; a payment gateway alert arrives in the middle of it. The payment incident must
open within two engine cycles however much of the storm is still waiting, and the storm must
end in the incidents a small storm would give: one per database, and the all_of incident holding
every pool once checkout fails. A running engine (its own loop, the system clock) takes an alert
that arrives during a storm cycle in a quick pass right after that cycle.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from detector.engine import correlation
from detector.engine.cycle import Engine
from detector.engine.signals import process_pending
from detector.engine.stage import CycleContext, Lane
from detector.intake.alertmanager import alertnames, log_entry, log_record, parse_payload
from detector.service.clock import SystemClock
from detector.store import intake_log
from tests.conftest import Passed, Shop, alert, events, payload, running_engine
from tests.fakes import PageReceiver

STORM = 5_000
DATABASES = 20
PER_WEBHOOK = 100  # Alertmanager sends a big group in few notifications
PAYMENT = "PaymentGatewayErrorRateHigh"

STORM_RULES = """
channels:
  - name: pager
    type: webhook
    url: {pager_url}
escalation_policies:
  - name: oncall
    steps:
      - notify: [pager]
rules:
  - name: db-pool-exhausted
    match: ['alertname="PgBouncerPoolSaturated"']
    group_by: [cluster, database]
    severity: critical
    title: "Pool exhausted ({{{{ labels.database }}}} on {{{{ labels.cluster }}}})"
    escalation_policy: oncall
  - name: checkout-failing-db-pool-exhausted
    group_by: [cluster]
    all_of:
      - ['alertname="PgBouncerPoolSaturated"']
      - ['alertname="CheckoutErrorSpike"']
    severity: critical
    title: "Checkout failing: database pool exhausted ({{{{ labels.cluster }}}})"
    escalation_policy: oncall
  - name: payment-gateway-errors
    match: ['alertname="PaymentGatewayErrorRateHigh"']
    group_by: [cluster]
    severity: critical
    title: "Payment gateway failing ({{{{ labels.cluster }}}})"
    escalation_policy: oncall
"""


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "storm.yml").write_text(STORM_RULES.format(pager_url=pager.url))
    return directory


def pools(first: int, count: int) -> list[dict[str, Any]]:
    return [
        alert(
            cluster="eu-1", database=f"orders_{n % DATABASES:02d}", pool=f"pool-{n}", service="pg"
        )
        for n in range(first, first + count)
    ]


async def post(shop: Shop, alerts: list[dict[str, Any]]) -> None:
    for start in range(0, len(alerts), PER_WEBHOOK):
        response = await shop.post_alerts(*alerts[start : start + PER_WEBHOOK])
        assert response.status == 200, await response.text()


async def open_titles(shop: Shop) -> list[str]:
    return sorted(incident["title"] for incident in await shop.incidents("open"))


async def alerts_waiting(shop: Shop) -> dict[str, int]:
    rows = await shop.services.pool.fetch(
        """SELECT i.title, count(*) AS alerts FROM incidents i
           JOIN incident_alerts a ON a.incident_id = i.id GROUP BY i.title"""
    )
    return {row["title"]: row["alerts"] for row in rows}


async def work_off(shop: Shop, cycles: int = 200) -> int:
    """Run cycles until one finds nothing to do; how many it took."""
    for done in range(1, cycles + 1):
        if not (await shop.cycle()).busy:
            return done
    raise AssertionError(f"still busy after {cycles} cycles")


async def test_an_unrelated_incident_opens_within_two_cycles_of_a_storm(shop: Shop) -> None:
    half = STORM // 2
    await post(shop, pools(0, half))
    with capture_logs() as logs:
        await shop.cycle()
    assert events(logs, "signals.group_sliced"), "the storm is worked off in slices"

    await post(shop, [alert("PaymentGatewayErrorRateHigh", cluster="eu-1", service="payments")])
    await post(shop, pools(half, STORM - half))
    for _ in range(2):
        await shop.cycle()
        if "Payment gateway failing (eu-1)" in await open_titles(shop):
            break
    else:
        pytest.fail("the payment incident waited behind the storm")

    await work_off(shop)
    per_database = [f"Pool exhausted (orders_{n:02d} on eu-1)" for n in range(DATABASES)]
    assert await open_titles(shop) == sorted([*per_database, "Payment gateway failing (eu-1)"])

    await post(shop, [alert("CheckoutErrorSpike", cluster="eu-1", service="checkout")])
    await work_off(shop)

    held = await alerts_waiting(shop)
    assert held == {
        **dict.fromkeys(per_database, STORM // DATABASES),
        "Payment gateway failing (eu-1)": 1,
        "Checkout failing: database pool exhausted (eu-1)": STORM + 1,
    }
    assert await shop.services.pool.fetchval("SELECT count(*) FROM conditions") == 0


async def intake_log_alerts(shop: Shop) -> int:
    return int(await shop.services.pool.fetchval("SELECT coalesce(sum(alerts), 0) FROM intake_log"))


async def test_a_quick_pass_opens_an_unrelated_incident_ahead_of_the_paced_storm(
    shop: Shop,
) -> None:
    half = STORM // 2
    await post(shop, pools(0, half))
    assert (await shop.cycle()).signals.storming == {"checkout-failing-db-pool-exhausted"}
    await post(shop, pools(half, 1_000))
    await post(shop, [alert("CheckoutErrorSpike", cluster="eu-1", service="checkout")])
    await post(shop, [alert("PaymentGatewayErrorRateHigh", cluster="eu-1", service="payments")])
    waiting = await intake_log_alerts(shop)

    quick = await shop.services.engine.run_ahead()

    assert quick.signals.arrived == 1
    assert "Payment gateway failing (eu-1)" in await open_titles(shop)
    assert await intake_log_alerts(shop) == waiting - 1, "the storm and the checkout alert wait"
    paged = await shop.services.pool.fetch(
        """SELECT i.title FROM outbox o JOIN incidents i ON i.id = o.incident_id
           WHERE o.kind = 'page' ORDER BY o.id DESC LIMIT 1"""
    )
    assert [row["title"] for row in paged] == ["Payment gateway failing (eu-1)"], "its page queued"

    await post(shop, pools(half + 1_000, STORM - half - 1_000))
    await work_off(shop)
    per_database = [f"Pool exhausted (orders_{n:02d} on eu-1)" for n in range(DATABASES)]
    held = await alerts_waiting(shop)
    assert held == {
        **dict.fromkeys(per_database, STORM // DATABASES),
        "Payment gateway failing (eu-1)": 1,
        "Checkout failing: database pool exhausted (eu-1)": STORM + 1,
    }, "the storm ends as it does without a quick pass"


async def test_a_hurried_storm_cycle_puts_off_the_storm_and_applies_another_rule(
    shop: Shop,
) -> None:
    """A quick pass that waits for a storm's cycle cuts the cycle short: the groups the storm
    reaches wait in their backlogs, in order, and another rule's group still applies."""
    half = STORM // 2
    await post(shop, pools(0, half))
    assert (await shop.cycle()).signals.storming == {"checkout-failing-db-pool-exhausted"}
    await post(shop, pools(half, 1_000))
    await post(shop, [alert(PAYMENT, cluster="eu-1", service="payments")])
    applied: list[str] = []

    async def correlate(*args: Any) -> correlation.Correlated:
        applied.append(args[2].rule.name)
        return await correlation.correlate(*args)

    rules = shop.services.rules.current
    with capture_logs() as logs:
        result = await process_pending(
            shop.services.pool,
            rules,
            shop.clock.now(),
            correlate=correlate,
            hurry=lambda: bool(applied),
        )

    assert applied == ["checkout-failing-db-pool-exhausted", "payment-gateway-errors"], (
        "a quick pass waits once the first group applied: the pool groups wait, payments apply"
    )
    assert result.put_off == DATABASES
    [put_off] = events(logs, "signals.groups_put_off")
    assert put_off["groups"] == DATABASES
    assert "Payment gateway failing (eu-1)" in await open_titles(shop)

    await post(shop, pools(half + 1_000, STORM - half - 1_000))
    await post(shop, [alert("CheckoutErrorSpike", cluster="eu-1", service="checkout")])
    await work_off(shop)
    per_database = [f"Pool exhausted (orders_{n:02d} on eu-1)" for n in range(DATABASES)]
    assert await alerts_waiting(shop) == {
        **dict.fromkeys(per_database, STORM // DATABASES),
        "Payment gateway failing (eu-1)": 1,
        "Checkout failing: database pool exhausted (eu-1)": STORM + 1,
    }, "the storm ends as it does when no cycle is cut short"


async def test_no_quick_pass_while_a_signal_waits_in_the_queue(shop: Shop) -> None:
    await post(shop, [alert("PaymentGatewayErrorRateHigh", cluster="eu-1", service="payments")])
    await shop.services.pool.execute(
        """INSERT INTO signals (source, name, fingerprint, status, starts_at, labels, annotations,
                                group_key, receiver, received_at, last_received_at)
           VALUES ('alertmanager', 'PgBouncerPoolSaturated', 'queued', 'firing', now(), '{}',
                   '{}', '', '', now(), now())"""
    )
    await shop.services.pool.execute(
        "INSERT INTO pending_signals (signal_id) SELECT max(id) FROM signals"
    )

    quick = await shop.services.engine.run_ahead()

    assert quick.signals.arrived == 0, "the queued signal may be older than the new alert"
    await shop.cycle()
    assert "Payment gateway failing (eu-1)" in await open_titles(shop)


async def log_alerts(pool: asyncpg.Pool, *alerts: dict[str, Any]) -> None:
    """Commit one webhook of ``alerts`` to the intake log, as intake does."""
    now = datetime.now(UTC)
    body = json.dumps(payload(*alerts)).encode()
    names = alertnames(parse_payload(body))
    record = intake_log.Record(1, len(alerts), names, log_record([log_entry(body, now)]))
    async with pool.acquire() as connection:
        await intake_log.append(connection, now, [record])


class Passes:
    """A stage closing the detecting lane: notes each pass (quick or not) and whether the
    payment incident was open after it. At the end of the second storm cycle, the one that
    works off the storm's backlog, a payment alert arrives as intake brings it."""

    name = "passes"
    lane = Lane.DETECT

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.seen: list[tuple[str, bool]] = []
        self.third = asyncio.Event()

    async def run(self, context: CycleContext) -> Passed:
        opened = await context.pool.fetchval(
            "SELECT count(*) FROM incidents WHERE title = 'Payment gateway failing (eu-1)'"
        )
        self.seen.append(("quick" if context.ahead else "cycle", bool(opened)))
        if self.engine is not None and self.seen == [("cycle", False)] * 2:
            await log_alerts(context.pool, alert(PAYMENT, cluster="eu-1", service="payments"))
            self.engine.signals_stored(intake_log.names_payload((PAYMENT,)))
        if len(self.seen) == 3:
            self.third.set()
        return Passed()


async def test_an_alert_arriving_during_a_storm_cycle_goes_ahead_right_after_it(
    pool: asyncpg.Pool, rules_dir: Path
) -> None:
    await log_alerts(pool, *pools(0, 1_000))
    passes = Passes()
    async with running_engine(
        pool, rules_dir, SystemClock(), interval=timedelta(minutes=5), extra_stages=[passes]
    ) as engine:
        passes.engine = engine
        await asyncio.wait_for(passes.third.wait(), timeout=10)

    assert passes.seen[:3] == [("cycle", False), ("cycle", False), ("quick", True)], (
        "the payment incident opens in a quick pass before the storm's next cycle"
    )
