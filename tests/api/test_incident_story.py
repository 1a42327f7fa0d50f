"""The incident's story through the real service: webhook → page → escalate → ack → resolve.

Real PostgreSQL, real HTTP for webhooks and pages; time moves only when the test moves the clock.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from structlog.testing import capture_logs

from detector.engine import signals as signal_stage
from tests.conftest import Shop, alert, events, reload_edited, with_signal_stage
from tests.fakes import T0, FailingGroup


def _assert_first_page(shop: Shop, page: dict[str, Any]) -> None:
    """The first page says what broke, links to the incident and to a signed acknowledge link,
    and carries a key the receiver can deduplicate resends by."""
    incident_id = page["incident"]["id"]
    assert page["incident"]["title"] == "Connection pool exhausted on eu-1"
    assert page["incident"]["severity"] == "critical"
    assert page["incident"]["summary"] == "PgBouncerPoolSaturated on eu-1"
    assert page["links"]["incident"] == f"https://stormwatch.example/api/v1/incidents/{incident_id}"
    assert page["links"]["acknowledge"].startswith("https://stormwatch.example/ack/")
    assert shop.pager.headers[0]["Idempotency-Key"].startswith(f"{incident_id}:")


class TestPoolExhaustionStory:
    async def test_page_escalate_ack_resolve(self, shop: Shop) -> None:
        firing = alert(cluster="eu-1")
        response = await shop.post_alerts(firing)
        assert response.status == 200
        assert await response.json() == {"status": "accepted", "alerts": 1}

        with capture_logs() as logs:
            await shop.cycle()
        [page] = shop.pager.delivered("triggered")
        incident_id = page["incident"]["id"]
        assert events(logs, "incident.opened") == [
            {"rule": "pool-exhausted", "title": "Connection pool exhausted on eu-1"}
        ]
        _assert_first_page(shop, page)
        assert shop.backup.requests == []

        await shop.advance(timedelta(minutes=4, seconds=59))
        assert shop.backup.requests == []
        await shop.advance(timedelta(seconds=1))
        [escalated] = shop.backup.delivered("triggered")
        assert escalated["escalation_step"] == 1

        ack = await shop.client.post(f"/api/v1/incidents/{incident_id}/ack", json={"by": "maria"})
        assert await ack.json() == {"id": incident_id, "result": "acknowledged"}
        await shop.cycle()
        assert len(shop.pager.delivered("acknowledged")) == 1
        assert len(shop.backup.delivered("acknowledged")) == 1

        await shop.post_alerts(
            {**firing, "status": "resolved", "endsAt": (T0 + timedelta(minutes=9)).isoformat()}
        )
        with capture_logs() as logs:
            await shop.advance(timedelta(minutes=10))
        detail = await shop.incident(incident_id)
        assert detail["state"] == "resolved"
        assert events(logs, "incident.resolved") == [
            {"rule": "pool-exhausted", "title": "Connection pool exhausted on eu-1"}
        ]
        assert detail["acknowledged_by"] == "maria"
        assert detail["resolved_by"] == "stormwatch"
        assert len(shop.pager.delivered("resolved")) == 1
        assert len(shop.backup.delivered("resolved")) == 1
        kinds = [event["kind"] for event in detail["timeline"]]
        assert kinds == [
            "incident.opened",
            "alerts.firing",
            "page.delivered",
            "incident.escalated",
            "page.delivered",
            "incident.acknowledged",
            "page.delivered",
            "page.delivered",
            "alerts.resolved",
            "incident.resolved",
            "page.delivered",
            "page.delivered",
        ]

    async def test_ack_stops_escalation(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [incident] = await shop.incidents("open")
        await shop.client.post(f"/api/v1/incidents/{incident['id']}/ack")
        report = await shop.advance(timedelta(minutes=30))
        assert [t.decision.reason for t in report.timers] == ["stale_epoch"]
        assert shop.backup.delivered("triggered") == []

    async def test_replayed_webhook_pages_once(self, shop: Shop) -> None:
        firing = alert(cluster="eu-1")
        for _ in range(5):
            assert (await shop.post_alerts(firing)).status == 200
            await shop.cycle()
        assert len(shop.pager.requests) == 1
        assert len(await shop.incidents()) == 1
        metrics = await (await shop.client.get("/metrics")).text()
        assert (
            'stormwatch_signals_received_total{outcome="accepted",source="alertmanager"} 1.0'
            in metrics
        )
        assert (
            'stormwatch_signals_received_total{outcome="duplicate",source="alertmanager"} 4.0'
            in metrics
        )

    async def test_groups_by_label_into_separate_incidents(self, shop: Shop) -> None:
        await shop.post_alerts(
            alert(cluster="eu-1", instance="a"), alert(cluster="eu-1", instance="b")
        )
        await shop.post_alerts(alert(cluster="us-1", instance="c"))
        await shop.cycle()
        titles = sorted(i["title"] for i in await shop.incidents())
        assert titles == ["Connection pool exhausted on eu-1", "Connection pool exhausted on us-1"]
        assert len(shop.pager.requests) == 2

    async def test_resolves_only_when_every_alert_resolved(self, shop: Shop) -> None:
        a, b = alert(cluster="eu-1", instance="a"), alert(cluster="eu-1", instance="b")
        await shop.post_alerts(a, b)
        await shop.cycle()
        await shop.post_alerts({**a, "status": "resolved"}, b)
        await shop.cycle()
        [incident] = await shop.incidents()
        assert incident["state"] == "triggered"
        await shop.post_alerts({**b, "status": "resolved"})
        await shop.cycle()
        [incident] = await shop.incidents()
        assert incident["state"] == "resolved"

    async def test_refire_within_cooldown_reopens_the_same_incident(self, shop: Shop) -> None:
        first = alert(cluster="eu-1")
        await shop.post_alerts(first)
        await shop.cycle()
        await shop.post_alerts({**first, "status": "resolved"})
        await shop.cycle()
        await shop.advance(timedelta(minutes=3))
        await shop.post_alerts({**first, "startsAt": shop.clock.now().isoformat()})
        await shop.cycle()
        [incident] = await shop.incidents()
        assert incident["state"] == "triggered"
        detail = await shop.incident(incident["id"])
        assert "incident.reopened" in [e["kind"] for e in detail["timeline"]]
        assert len(shop.pager.delivered("triggered")) == 1, "no second incident, no new page"
        [reopened] = shop.pager.delivered("reopened")
        assert reopened["incident"]["id"] == incident["id"]
        assert "acknowledge" in reopened["links"]

    async def test_refire_after_cooldown_opens_a_new_incident(self, shop: Shop) -> None:
        first = alert(cluster="eu-1")
        await shop.post_alerts(first)
        await shop.cycle()
        await shop.post_alerts({**first, "status": "resolved"})
        await shop.cycle()
        await shop.advance(timedelta(minutes=11))
        await shop.post_alerts({**first, "startsAt": shop.clock.now().isoformat()})
        await shop.cycle()
        states = sorted(i["state"] for i in await shop.incidents())
        assert states == ["resolved", "triggered"]
        assert len(shop.pager.delivered("triggered")) == 2


class TestSilenceAutoResolve:
    async def test_resolves_after_quiet_period_counting_replays(self, shop: Shop) -> None:
        spike = alert("CheckoutErrorSpike", service="checkout")
        await shop.post_alerts(spike)
        await shop.cycle()
        await shop.advance(timedelta(minutes=10))
        await shop.post_alerts(spike)  # Alertmanager's repeat: same occurrence, still alive
        await shop.advance(timedelta(minutes=10))
        [incident] = await shop.incidents()
        assert incident["state"] == "triggered"
        await shop.client.post(f"/api/v1/incidents/{incident['id']}/ack")
        await shop.advance(timedelta(minutes=5))
        detail = await shop.incident(incident["id"])
        assert detail["state"] == "resolved"
        [resolution] = [e for e in detail["timeline"] if e["kind"] == "incident.resolved"]
        assert resolution["detail"]["reason"] == "no signal for 15m"
        assert resolution["at"] == (T0 + timedelta(minutes=25)).isoformat()


class TestDelivery:
    async def test_retries_then_dead_letters(self, shop: Shop) -> None:
        shop.pager.statuses = [503, 502, 500]
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        assert len(shop.pager.requests) == 1
        await shop.advance(timedelta(seconds=7))
        assert len(shop.pager.requests) == 1, "the retry waits for its backoff"
        await shop.advance(timedelta(seconds=5))
        assert len(shop.pager.requests) == 2
        await shop.advance(timedelta(seconds=30))
        assert len(shop.pager.requests) == 3
        await shop.advance(timedelta(minutes=10))
        assert len(shop.pager.requests) == 3, "dead-lettered after max_attempts"
        [incident] = await shop.incidents()
        kinds = [e["kind"] for e in (await shop.incident(incident["id"]))["timeline"]]
        assert kinds.count("page.failed") == 2
        assert kinds.count("page.dead_lettered") == 1
        metrics = await (await shop.client.get("/metrics")).text()
        assert (
            'stormwatch_deliveries_total{channel="pager",outcome="dead",reason="server_error"} 1.0'
            in metrics
        )
        assert (
            'stormwatch_deliveries_total{channel="pager",outcome="retry",reason="server_error"} 2.0'
            in metrics
        )

    async def test_client_error_is_permanent(self, shop: Shop) -> None:
        shop.pager.statuses = [400]
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        await shop.advance(timedelta(minutes=10))
        assert len(shop.pager.requests) == 1

    async def test_page_waiting_for_a_retry_is_superseded_once_the_incident_moves_on(
        self, shop: Shop
    ) -> None:
        shop.pager.statuses = [503]
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [incident] = await shop.incidents()
        resolved = await shop.client.post(f"/api/v1/incidents/{incident['id']}/resolve")
        assert resolved.status == 200
        with capture_logs() as logs:
            await shop.cycle()
            await shop.advance(timedelta(minutes=10))  # well past the page's retry time

        assert events(logs, "page.superseded") == [
            {"channel": "pager", "incident_id": incident["id"]}
        ]
        pages = zip(shop.pager.requests, shop.pager.answers, strict=True)
        sent = [(page["event"], status) for page, status in pages]
        assert sent == [("triggered", 503), ("resolved", 200)], "no page after the resolution"
        timeline = (await shop.incident(incident["id"]))["timeline"]
        [superseded] = [e for e in timeline if e["kind"] == "page.superseded"]
        assert superseded["detail"]["event"] == "triggered"
        assert superseded["detail"]["channel"] == "pager"
        metrics = await (await shop.client.get("/metrics")).text()
        assert (
            'stormwatch_deliveries_total{channel="pager",outcome="superseded",'
            'reason="incident_moved_on"} 1.0' in metrics
        )


class TestTimerFailures:
    async def test_a_failing_timer_does_not_hold_up_the_others(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-1"), alert(cluster="eu-2"))
        await shop.cycle()
        assert len(shop.pager.delivered("triggered")) == 2
        await _fail_first_escalation(shop.services.pool)
        with capture_logs() as logs:
            await shop.advance(timedelta(minutes=5))
        assert len(shop.backup.delivered("triggered")) == 1, "the other escalation went out"
        [failed] = events(logs, "timer.failed")
        assert (failed["kind"], failed["retry_in"]) == ("escalate", "0:01:00")
        await shop.advance(timedelta(seconds=30))
        assert len(shop.backup.delivered("triggered")) == 1, "the failed one waits for its lease"
        await shop.advance(timedelta(seconds=31))
        escalated = shop.backup.delivered("triggered")
        assert sorted(p["incident"]["title"] for p in escalated) == [
            "Connection pool exhausted on eu-1",
            "Connection pool exhausted on eu-2",
        ]
        metrics = await (await shop.client.get("/metrics")).text()
        assert 'stormwatch_engine_errors_total{stage="timers"} 1.0' in metrics


async def _fail_first_escalation(pool: asyncpg.Pool) -> None:
    """Make the first escalation's transaction fail, once, as a bug in it would (a sequence
    counts the tries: it is not rolled back with the transaction)."""
    await pool.execute(
        """CREATE SEQUENCE escalation_tries;
           CREATE FUNCTION one_bad_escalation() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               IF nextval('escalation_tries') = 1 THEN
                   RAISE EXCEPTION 'one bad escalation';
               END IF;
               RETURN NEW;
           END $$;
           CREATE TRIGGER one_bad_escalation BEFORE UPDATE ON incidents FOR EACH ROW
               WHEN (NEW.escalation_step > OLD.escalation_step)
               EXECUTE FUNCTION one_bad_escalation();"""
    )


class TestSignalFailures:
    """A rule group whose update fails keeps its signals: Alertmanager's resends of them are
    duplicates, so nothing else would bring them back."""

    async def test_failed_group_is_tried_again_for_its_rule_only(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        both = 'alertname=~"CheckoutErrorSpike|PgBouncerPoolSaturated"'
        await reload_edited(shop, rules_dir, 'alertname="CheckoutErrorSpike"', both)
        shop, applied = _failing(shop, "checkout-errors")
        await shop.post_alerts(alert(cluster="eu-1"))
        with capture_logs() as logs:
            await shop.cycle()
        titles = [p["incident"]["title"] for p in shop.pager.delivered("triggered")]
        assert titles == ["Connection pool exhausted on eu-1"]
        assert events(logs, "signals.group_failed") == [
            {"rule": "checkout-errors", "group_key": "{}"}
        ]

        await shop.cycle()
        titles = [p["incident"]["title"] for p in shop.pager.delivered("triggered")]
        assert titles == ["Connection pool exhausted on eu-1", "Checkout errors"]
        assert applied == ["pool-exhausted", "checkout-errors", "checkout-errors"]
        metrics = await (await shop.client.get("/metrics")).text()
        assert 'stormwatch_signals_processed_total{outcome="error"} 1.0' in metrics

    async def test_a_group_that_keeps_failing_is_tried_less_often(self, shop: Shop) -> None:
        shop, applied = _failing(shop, "pool-exhausted", times=5)
        await shop.post_alerts(alert(cluster="eu-1"))
        for _ in range(6):
            await shop.cycle()
        assert len(applied) == signal_stage.QUICK_RETRIES + 1, "then it waits"
        await shop.advance(signal_stage.FIRST_SLOW_RETRY)
        assert len(applied) == 5
        await shop.advance(signal_stage.FIRST_SLOW_RETRY)
        assert len(applied) == 5, "the wait doubles"
        await shop.advance(signal_stage.FIRST_SLOW_RETRY)
        assert len(applied) == 6
        assert [p["incident"]["title"] for p in shop.pager.delivered("triggered")] == [
            "Connection pool exhausted on eu-1"
        ]


def _failing(shop: Shop, rule: str, times: int = 1) -> tuple[Shop, list[str]]:
    """The shop with ``rule``'s group failing ``times`` times in the signal stage; and the rules
    of every group applied, in order."""
    group = FailingGroup(rule, times)
    stage = partial(signal_stage.process_pending, correlate=group)
    return with_signal_stage(shop, stage), group.applied
