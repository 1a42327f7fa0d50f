"""Hot reload: a valid edit is swapped in whole, an invalid one keeps the running rules."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from detector.engine import signals as signal_stage
from detector.engine.signals import SignalBatchResult
from detector.ruleset.rules import RuleSet
from tests.conftest import (
    LAG_TOO,
    POOL_NAME,
    RULES,
    Shop,
    alert,
    events,
    reload_edited,
    with_signal_stage,
)

VARIANT = """
channels:
  - name: pager
    type: webhook
    url: {url}
rules:
  - name: pool-exhausted
    match: ['alertname="PgBouncerPoolSaturated"']
    group_by: [cluster]
    severity: {severity}
    title: "{title} {{{{ labels.cluster }}}}"
"""


def rewrite(rules_dir: Path, text: str) -> None:
    (rules_dir / "shop.yml").write_text(text)


def variant(shop: Shop, severity: str, title: str) -> str:
    return VARIANT.format(url=shop.pager.url, severity=severity, title=title)


async def status(shop: Shop) -> dict[str, Any]:
    return await (await shop.client.get("/api/v1/rules/status")).json()  # type: ignore[no-any-return]


async def metric(shop: Shop, name: str) -> str:
    text = await (await shop.client.get("/metrics")).text()
    return next(line for line in text.splitlines() if line.startswith(name + " "))


class TestReload:
    async def test_valid_edit_is_swapped_in(self, shop: Shop, rules_dir: Path) -> None:
        rewrite(rules_dir, variant(shop, "minor", "B"))
        with capture_logs() as logs:
            response = await shop.client.post("/api/v1/rules/reload")
        assert response.status == 200
        assert events(logs, "rules.reloaded") == [{"trigger": "api", "rules": 1}]
        body = await response.json()
        assert body["running"]["rules"] == ["pool-exhausted"]
        assert body["last_reload"]["success"] is True
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [incident] = await shop.incidents()
        assert (incident["severity"], incident["title"]) == ("minor", "B eu-1")

    async def test_invalid_edit_keeps_running_rules_and_says_why(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        rewrite(
            rules_dir,
            RULES.format(pager_url=shop.pager.url, backup_url=shop.backup.url).replace(
                "severity: critical", "severity: catastrophic"
            ),
        )
        with capture_logs() as logs:
            response = await shop.client.post("/api/v1/rules/reload")
        assert response.status == 422
        body = await response.json()
        [error] = body["last_reload"]["errors"]
        assert events(logs, "rules.reload_failed") == [{"trigger": "api", "errors": [error]}]
        assert events(logs, "rules.reloaded") == []
        assert error.startswith(f"{rules_dir / 'shop.yml'}:")
        assert "rules[0].severity" in error
        assert body["running"]["rules"] == ["checkout-errors", "pool-exhausted"]
        assert (
            await metric(shop, "stormwatch_rules_last_reload_success")
            == "stormwatch_rules_last_reload_success 0.0"
        )
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [incident] = await shop.incidents()
        assert incident["severity"] == "critical"

    async def test_file_change_is_noticed(self, shop: Shop, rules_dir: Path) -> None:
        assert shop.services.reloader.reload_if_changed() is None
        rewrite(rules_dir, variant(shop, "minor", "B"))
        outcome = shop.services.reloader.reload_if_changed()
        assert outcome is not None
        assert outcome.ok
        assert sorted(shop.services.rules.current.rules) == ["pool-exhausted"]

    async def test_sighup_reloads(self, shop: Shop, rules_dir: Path) -> None:
        rewrite(rules_dir, variant(shop, "minor", "B"))
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(5):  # the loop handles the signal on its next turn
            while "checkout-errors" in shop.services.rules.current.rules:  # noqa: ASYNC110 - OS signal, no event to await
                await asyncio.sleep(0.01)
        assert (await status(shop))["running"]["rules"] == ["pool-exhausted"]

    async def test_incident_of_a_removed_rule_stays_and_can_be_resolved(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        text = RULES.format(pager_url=shop.pager.url, backup_url=shop.backup.url)
        rewrite(
            rules_dir,
            text[: text.index("  - name: pool-exhausted")]
            + text[text.index("  - name: checkout-errors") :],
        )
        assert (await shop.client.post("/api/v1/rules/reload")).status == 200
        await shop.post_alerts(alert(cluster="eu-1", instance="b"))
        await shop.advance(timedelta(minutes=6))
        [incident] = await shop.incidents("open")
        assert incident["rule"] == "pool-exhausted"
        assert len(shop.backup.delivered("triggered")) == 1, (
            "the snapshotted policy still escalates"
        )
        resolved = await shop.client.post(f"/api/v1/incidents/{incident['id']}/resolve")
        assert (await resolved.json())["result"] == "resolved"
        unmatched = await (await shop.client.get("/api/v1/signals/unmatched")).json()
        assert [s["labels"]["instance"] for s in unmatched["signals"]] == ["b"]

    async def test_a_firing_alert_a_new_rule_matches_opens_an_incident_when_resent(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        firing = alert("ReplicationLagHigh", cluster="eu-1")
        await shop.post_alerts(firing)
        await shop.cycle()
        assert await shop.incidents() == []
        await reload_edited(shop, rules_dir, POOL_NAME, LAG_TOO)

        shop.clock.advance(timedelta(minutes=5))  # Alertmanager's next notification of the group
        await shop.post_alerts(firing)
        await shop.cycle()
        [incident] = await shop.incidents("open")
        assert incident["rule"] == "pool-exhausted"
        assert len(shop.pager.delivered("triggered")) == 1
        unmatched = await (await shop.client.get("/api/v1/signals/unmatched")).json()
        assert unmatched["signals"] == []
        duplicate = 'stormwatch_signals_received_total{outcome="duplicate",source="alertmanager"}'
        assert await metric(shop, duplicate) == f"{duplicate} 1.0"

    async def test_a_resend_moments_after_the_rule_is_added_is_not_answered_from_memory(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        firing = alert("ReplicationLagHigh", cluster="eu-1")
        await shop.post_alerts(firing)
        await shop.cycle()
        await reload_edited(shop, rules_dir, POOL_NAME, LAG_TOO)

        shop.clock.advance(timedelta(seconds=2))  # a retry, well inside the replay window
        await shop.post_alerts(firing)
        await shop.cycle()
        [incident] = await shop.incidents("open")
        assert incident["rule"] == "pool-exhausted"
        exposition = await (await shop.client.get("/metrics")).text()
        assert 'stormwatch_webhooks_total{outcome="replayed"}' not in exposition


class TestAlertsStayWithTheirIncident:
    """An alert an open incident holds goes to it until it resolves, whatever a later edit says."""

    POOL_MATCH = """match: ['alertname="PgBouncerPoolSaturated"']"""

    async def test_the_resolution_reaches_it_after_the_rule_stops_matching(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [opened] = await shop.incidents("open")
        narrowed = """match: ['alertname="PgBouncerPoolSaturated"', 'cluster="eu-2"']"""
        await reload_edited(shop, rules_dir, self.POOL_MATCH, narrowed)

        shop.clock.advance(timedelta(minutes=5))
        await shop.post_alerts(alert(cluster="eu-1", status="resolved", ends_at=shop.clock.now()))
        await shop.cycle()
        assert (await shop.incident(opened["id"]))["state"] == "resolved"
        unmatched = await (await shop.client.get("/api/v1/signals/unmatched")).json()
        assert unmatched["signals"] == []

        await shop.post_alerts(alert(cluster="eu-1", starts_at=shop.clock.now()))
        await shop.cycle()
        assert len(await shop.incidents()) == 1, "a new occurrence follows the edited rule"
        unmatched = await (await shop.client.get("/api/v1/signals/unmatched")).json()
        assert [s["labels"]["cluster"] for s in unmatched["signals"]] == ["eu-1"]

    async def test_a_new_group_by_does_not_split_it(self, shop: Shop, rules_dir: Path) -> None:
        await shop.post_alerts(
            alert(cluster="eu-1", instance="a"), alert(cluster="eu-1", instance="b")
        )
        await shop.cycle()
        [opened] = await shop.incidents("open")
        await reload_edited(shop, rules_dir, "group_by: [cluster]", "group_by: [cluster, instance]")

        shop.clock.advance(timedelta(minutes=5))
        resolved_at = shop.clock.now()
        await shop.post_alerts(
            alert(cluster="eu-1", instance="a", status="resolved", ends_at=resolved_at)
        )
        await shop.cycle()
        assert (await shop.incident(opened["id"]))["state"] != "resolved", "b still fires"
        await shop.post_alerts(
            alert(cluster="eu-1", instance="b", status="resolved", ends_at=resolved_at)
        )
        await shop.cycle()
        assert [i["state"] for i in await shop.incidents()] == ["resolved"]
        assert len(shop.pager.delivered("triggered")) == 1

    async def test_its_resends_keep_a_silence_rule_from_resolving_it(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        spike = alert("CheckoutErrorSpike", shop="eu")
        await shop.post_alerts(spike)
        await shop.cycle()
        [opened] = await shop.incidents("open")
        narrowed = """match: ['alertname="CheckoutErrorSpike"', 'shop="us"']"""
        await reload_edited(
            shop, rules_dir, """match: ['alertname="CheckoutErrorSpike"']""", narrowed
        )

        for _ in range(6):  # resends every 5 min for 30 min: twice the 15 min of silence allowed
            shop.clock.advance(timedelta(minutes=5))
            await shop.post_alerts(spike)
            await shop.cycle()
        assert (await shop.incident(opened["id"]))["state"] == "triggered"
        await shop.advance(timedelta(minutes=16))
        assert (await shop.incident(opened["id"]))["state"] == "resolved"


ALL_OF_LAG = (
    "    all_of:\n"
    "      - ['alertname=\"PgBouncerPoolSaturated\"']\n"
    "      - ['alertname=\"ReplicationLagHigh\"']\n"
)


class TestConditionRemoved:
    """A reload that takes a rule's condition away must not strand what it kept waiting."""

    @pytest.mark.parametrize(
        "condition",
        [
            pytest.param("    for: 1h\n", id="for: released at once, not an hour later"),
            pytest.param(ALL_OF_LAG, id="all_of: which never schedules a check"),
        ],
    )
    @pytest.mark.parametrize(
        ("resolved_meanwhile", "pages"),
        [pytest.param(False, 1, id="still firing"), pytest.param(True, 0, id="resolved")],
    )
    async def test_alerts_the_condition_was_holding_join_the_incident(
        self, shop: Shop, rules_dir: Path, condition: str, resolved_meanwhile: bool, pages: int
    ) -> None:
        await _with_condition(shop, rules_dir, condition)
        firing = alert(cluster="eu-1")
        await shop.post_alerts(firing)
        await shop.cycle()
        assert await shop.incidents() == []
        if resolved_meanwhile:
            await shop.advance(timedelta(minutes=1))
            await shop.post_alerts({**firing, "status": "resolved"})
            await shop.cycle()
        await reload_edited(shop, rules_dir, POOL_NAME, POOL_NAME)  # the rules as they were
        await shop.advance(timedelta(seconds=1))
        assert len(shop.pager.delivered("triggered")) == pages
        assert len(await shop.incidents("open")) == pages
        assert await shop.services.pool.fetchval("SELECT count(*) FROM conditions") == 0

    async def test_a_reload_during_an_engine_cycle_is_not_missed(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        await _with_condition(shop, rules_dir, ALL_OF_LAG)
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        as_they_were = [RULES.format(pager_url=shop.pager.url, backup_url=shop.backup.url)]

        async def rules_swapped_meanwhile(
            pool: asyncpg.Pool, rules: RuleSet, now: datetime
        ) -> SignalBatchResult:
            result = await signal_stage.process_pending(pool, rules, now)
            if as_they_were:
                (rules_dir / "shop.yml").write_text(as_they_were.pop())
                shop.services.reloader.reload("test")
            return result

        shop = with_signal_stage(shop, rules_swapped_meanwhile)
        for _ in range(3):
            await shop.cycle()
        assert len(shop.pager.delivered("triggered")) == 1


async def _with_condition(shop: Shop, rules_dir: Path, condition: str) -> None:
    """Reload the shop's rules with ``condition`` added to the pool rule (widened to lag)."""
    reopen = "    reopen_within: 10m\n"
    text = RULES.format(pager_url=shop.pager.url, backup_url=shop.backup.url)
    with_condition = text.replace(POOL_NAME, LAG_TOO).replace(reopen, reopen + condition)
    (rules_dir / "shop.yml").write_text(with_condition)
    assert (await shop.client.post("/api/v1/rules/reload")).status == 200


class TestReloadUnderLoad:
    WEBHOOKS = 200

    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"rules_watch_interval": "0s"}

    async def test_no_signal_lost_and_no_rule_half_applied(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        sets = [
            variant(shop, "minor", "A"),
            variant(shop, "critical", "B"),
            "rules: [{name: broken",
        ]

        async def send(worker: int) -> list[int]:
            statuses = []
            for n in range(worker, self.WEBHOOKS, 10):
                response = await shop.post_alerts(alert(cluster=f"c{n}"))
                statuses.append(response.status)
            return statuses

        async def reload_repeatedly() -> None:
            for n in range(30):
                rewrite(rules_dir, sets[n % 3])
                await shop.client.post("/api/v1/rules/reload")
                await shop.cycle()

        results = await asyncio.gather(*(send(w) for w in range(10)), reload_repeatedly())
        assert all(status == 200 for statuses in results[:-1] for status in statuses)
        while (await shop.cycle()).signals.processed:
            pass
        assert await shop.services.pool.fetchval("SELECT count(*) FROM signals") == self.WEBHOOKS
        pairs = {(i["severity"], i["title"].split()[0]) for i in await shop.incidents()}
        assert pairs <= {("minor", "A"), ("critical", "B"), ("critical", "Connection")}
        assert len(await shop.incidents()) == self.WEBHOOKS
