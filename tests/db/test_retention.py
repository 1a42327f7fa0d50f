"""Retention prunes engine bookkeeping, never what an open incident still needs."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Shop, alert


class TestRetention:
    async def test_old_bookkeeping_goes_open_incident_evidence_stays(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))  # stays open: its signal must stay
        closed = alert(cluster="us-1")
        await shop.post_alerts(closed)
        await shop.cycle()
        await shop.post_alerts({**closed, "status": "resolved"})
        await shop.advance(timedelta(minutes=10))  # escalation fires, pages are delivered
        pool = shop.services.pool
        assert await pool.fetchval("SELECT count(*) FROM signals") == 3
        assert await pool.fetchval("SELECT count(*) FROM timers WHERE fired_at IS NOT NULL") >= 1

        await shop.advance(timedelta(days=29))
        assert await pool.fetchval("SELECT count(*) FROM signals") == 3, "inside retention"

        await shop.advance(timedelta(days=2))  # the engine prunes once an hour
        left = await pool.fetch("SELECT labels->>'cluster' AS c, status FROM signals")
        assert [(row["c"], row["status"]) for row in left] == [("eu-1", "firing")]
        assert await pool.fetchval("SELECT count(*) FROM timers WHERE fired_at IS NOT NULL") == 0
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE state = 'delivered'") == 0
        assert len(await shop.incidents()) == 2, "incidents and their timelines are kept"
        assert len((await shop.incident(1))["timeline"]) > 3
