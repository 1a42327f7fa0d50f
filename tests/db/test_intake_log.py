"""The intake log: a 2xx means the webhook is in PostgreSQL before any engine has looked at it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from detector.domain.model import Signal
from detector.intake.alertmanager import log_entry, log_record, parse_payload, to_signals
from detector.intake.batcher import IntakeBatcher
from detector.store import backlog, intake_log
from detector.store import signals as inbox
from detector.store.intake_log import Head, Record
from detector.store.waiting import Backlog, waiting_in
from detector.store.wakeup import INTAKE_CHANNEL
from tests.conftest import Shop, alert, payload
from tests.fakes import T0

POISON = [
    pytest.param(alert("Pool\u0000Saturated"), id="PostgreSQL will not store it"),
    pytest.param(
        {**alert(cluster="eu-9"), "startsAt": "0001-01-01T00:00:00+01:00"}, id="no longer reads"
    ),
]
"""Alerts intake refuses now, as a record written before it did may still hold them."""


async def _metric(shop: Shop, line_start: str) -> str:
    text = await (await shop.client.get("/metrics")).text()
    return next(line for line in text.splitlines() if line.startswith(line_start))


async def _received(shop: Shop, outcome: str) -> str:
    """The value of the alerts-received counter for ``outcome``, as /metrics prints it."""
    name = f'stormwatch_signals_received_total{{outcome="{outcome}",source="alertmanager"}}'
    return (await _metric(shop, name)).removeprefix(f"{name} ")


class TestIntakeLog:
    async def test_answered_webhooks_wait_in_the_log_until_the_engine_expands_them(
        self, shop: Shop
    ) -> None:
        pool = shop.services.pool
        answers = await asyncio.gather(
            *(shop.post_alerts(alert(cluster=f"eu-{n}")) for n in range(20))
        )
        assert {a.status for a in answers} == {200}
        assert await pool.fetchval("SELECT sum(requests) FROM intake_log") == 20
        assert await pool.fetchval("SELECT count(*) FROM signals") == 0

        await shop.cycle()
        assert await pool.fetchval("SELECT count(*) FROM intake_log") == 0
        assert await pool.fetchval("SELECT count(*) FROM signals") == 20
        assert len(await shop.incidents()) == 20

    async def test_metrics_count_each_commit_and_the_webhooks_it_held(self, shop: Shop) -> None:
        answers = await asyncio.gather(
            *(shop.post_alerts(alert(cluster=f"eu-{n}")) for n in range(20))
        )
        assert {a.status for a in answers} == {200}

        commits = await shop.services.pool.fetchval("SELECT count(*) FROM intake_log")
        held = await _metric(shop, "stormwatch_intake_commit_webhooks_sum ")
        assert held == "stormwatch_intake_commit_webhooks_sum 20.0"
        counted = await _metric(shop, "stormwatch_intake_commit_seconds_count ")
        assert counted == f"stormwatch_intake_commit_seconds_count {float(commits)}"

    async def test_replays_count_as_duplicates_when_expanded(self, shop: Shop) -> None:
        firing = alert(cluster="eu-1")
        for _ in range(3):
            await shop.post_alerts(firing)
            shop.clock.advance(timedelta(seconds=11))  # past the replay window: stored again
        logged = 'stormwatch_intake_alerts_total{source="alertmanager"}'
        assert await _metric(shop, logged) == f"{logged} 3.0"
        await shop.cycle()
        assert await _received(shop, "accepted") == "1.0"
        assert await _received(shop, "duplicate") == "2.0"
        assert len(shop.pager.delivered("triggered")) == 1

    async def test_a_resend_moments_later_is_answered_without_storing_it_again(
        self, shop: Shop
    ) -> None:
        firing = alert(cluster="eu-1")
        first = await shop.post_alerts(firing)
        shop.clock.advance(timedelta(seconds=2))
        again = await shop.post_alerts(firing)
        assert (first.status, again.status) == (200, 200)
        assert await again.json() == {"status": "accepted", "alerts": 1}
        assert await shop.services.pool.fetchval("SELECT sum(requests) FROM intake_log") == 1
        replayed = 'stormwatch_webhooks_total{outcome="replayed"}'
        assert await _metric(shop, replayed) == f"{replayed} 1.0"

        await shop.cycle()
        assert await _received(shop, "accepted") == "1.0"
        assert await _received(shop, "duplicate") == "1.0"
        assert len(shop.pager.delivered("triggered")) == 1

    async def test_a_resend_after_a_firing_alerts_end_is_stored_and_resolves_it(
        self, shop: Shop
    ) -> None:
        firing = alert(cluster="eu-1", ends_at=shop.clock.now() + timedelta(seconds=5))
        await shop.post_alerts(firing)
        await shop.cycle()
        [incident] = await shop.incidents("open")
        shop.clock.advance(timedelta(seconds=6))  # inside the replay window, past endsAt
        await shop.post_alerts(firing)
        # stored (the first record is already expanded and gone), to be read as a resolution
        assert await shop.services.pool.fetchval("SELECT count(*) FROM intake_log") == 1
        await shop.cycle()
        assert (await shop.incident(incident["id"]))["state"] == "resolved"

    async def test_unreadable_record_is_kept_for_inspection_and_the_rest_proceeds(
        self, shop: Shop
    ) -> None:
        pool = shop.services.pool
        await pool.execute(
            "INSERT INTO intake_log (received_at, requests, alerts, bodies)"
            " VALUES (now(), 1, 1, 'not json')"
        )
        await shop.post_alerts(alert(cluster="eu-1"))

        await shop.cycle()
        assert await pool.fetchval("SELECT count(*) FROM intake_log") == 0
        assert len(await shop.incidents()) == 1
        kept = await (await shop.client.get("/api/v1/webhooks/rejected")).json()
        assert [(r["field"], r["body"]) for r in kept["rejected"]] == [("intake_log", "not json")]
        errors = 'stormwatch_engine_errors_total{stage="intake_log"}'
        assert await _metric(shop, errors) == f"{errors} 1.0"

    @pytest.mark.parametrize("poison", POISON)
    async def test_a_record_that_cannot_be_expanded_is_set_aside_and_the_rest_proceeds(
        self, shop: Shop, poison: dict[str, Any]
    ) -> None:
        pool = shop.services.pool
        record = log_record([log_entry(json.dumps(payload(poison)).encode(), shop.clock.now())])
        async with pool.acquire() as connection:  # as stored before intake refused such bodies
            await intake_log.append(connection, shop.clock.now(), [Record(1, 1, None, record)])
        await shop.post_alerts(alert(cluster="eu-1"))

        await shop.cycle()
        assert await pool.fetchval("SELECT count(*) FROM intake_log") == 0
        assert [i["title"] for i in await shop.incidents()] == ["Connection pool exhausted on eu-1"]
        kept = await (await shop.client.get("/api/v1/webhooks/rejected")).json()
        assert [r["field"] for r in kept["rejected"]] == ["intake_log"]
        await shop.cycle()
        errors = 'stormwatch_engine_errors_total{stage="intake_log"}'
        assert await _metric(shop, errors) == f"{errors} 1.0"

    @pytest.mark.parametrize("poison", POISON)
    async def test_only_the_bad_webhook_of_a_record_is_set_aside(
        self, shop: Shop, poison: dict[str, Any]
    ) -> None:
        pool = shop.services.pool
        now = shop.clock.now()
        good_body = json.dumps(payload(alert(cluster="eu-1")))
        odd = good_body.replace('"version"', '"extra": 1e400, "version"', 1)  # read by nobody
        good = log_entry(odd.encode(), now)
        bad = log_entry(json.dumps(payload(poison)).encode(), now)
        async with pool.acquire() as connection:  # one group commit held both
            await intake_log.append(connection, now, [Record(2, 2, None, log_record([bad, good]))])

        await shop.cycle()
        assert [i["title"] for i in await shop.incidents()] == ["Connection pool exhausted on eu-1"]
        kept = await (await shop.client.get("/api/v1/webhooks/rejected")).json()
        [rejected] = kept["rejected"]
        assert "eu-1" not in rejected["body"], "only the bad webhook is set aside"
        assert await pool.fetchval("SELECT count(*) FROM intake_log") == 0

    async def test_a_large_backlog_is_expanded_in_bounded_steps(self, shop: Shop) -> None:
        groups = [
            payload(*(alert(cluster=f"c{g}", instance=f"i{n}") for n in range(300)))
            for g in range(5)
        ]
        for body in groups:
            response = await shop.client.post("/api/v1/alertmanager", json=body)
            assert response.status == 200
        cycles = [await shop.cycle()]
        while cycles[-1].busy:
            cycles.append(await shop.cycle())
        expanded = [c.signals.expansion.stored.inserted for c in cycles]
        assert expanded == [600, 600, 300, 0]  # whole records, about 500 alerts a cycle
        # full batches mean more is waiting, so the engine goes on without pausing
        assert [c.signals.behind for c in cycles] == [True, True, False, False]
        assert await shop.services.pool.fetchval("SELECT count(*) FROM signals") == 1500

    async def test_replays_refresh_last_arrival_only_for_alerts_a_rule_watches(
        self, shop: Shop
    ) -> None:
        watched = alert(cluster="eu-1")
        unwatched = alert("DiskAlmostFull", instance="db-3")
        await shop.post_alerts(watched, unwatched)
        await shop.cycle()
        first = shop.clock.now()
        shop.clock.advance(timedelta(minutes=2))
        await shop.post_alerts(watched, unwatched)
        await shop.cycle()

        rows = await shop.services.pool.fetch(
            "SELECT name, last_received_at, unmatched FROM signals"
        )
        assert {(r["name"], r["last_received_at"], r["unmatched"]) for r in rows} == {
            (watched["labels"]["alertname"], first + timedelta(minutes=2), False),
            ("DiskAlmostFull", first, True),
        }
        listed = await (await shop.client.get("/api/v1/signals/unmatched")).json()
        assert [s["name"] for s in listed["signals"]] == ["DiskAlmostFull"]
        assert await _received(shop, "duplicate") == "2.0"

    async def test_webhooks_sent_one_after_another_are_all_answered(self, shop: Shop) -> None:
        # Each request may find the previous one's writer finished; a new writer must start,
        # and none may be left waiting for a writer that is already gone.
        for n in range(40):
            response = await asyncio.wait_for(shop.post_alerts(alert(cluster=f"eu-{n}")), 5)
            assert response.status == 200
        assert await shop.services.pool.fetchval("SELECT sum(requests) FROM intake_log") == 40


def _entry(*alerts: dict[str, Any]) -> bytes:
    return log_entry(json.dumps(payload(*alerts)).encode(), T0)


class TestRecords:
    async def test_a_commit_keeps_one_record_per_set_of_alert_names_in_arrival_order(
        self, pool: asyncpg.Pool
    ) -> None:
        batcher = IntakeBatcher(pool, lambda: T0)
        requests = [
            (alert("PgBouncerPoolSaturated", pool="a"), ("PgBouncerPoolSaturated",)),
            (alert("PgBouncerPoolSaturated", pool="b"), ("PgBouncerPoolSaturated",)),
            (alert("PaymentGatewayErrorRateHigh"), ("PaymentGatewayErrorRateHigh",)),
            (alert("PgBouncerPoolSaturated", pool="c"), ("PgBouncerPoolSaturated",)),
        ]
        # Queued before the writer first runs, so one commit holds them all.
        await asyncio.gather(*(batcher.submit(_entry(a), 1, names) for a, names in requests))

        rows = await pool.fetch("SELECT requests, alertnames, bodies FROM intake_log ORDER BY id")
        assert [(row["requests"], row["alertnames"]) for row in rows] == [
            (3, ["PgBouncerPoolSaturated"]),
            (1, ["PaymentGatewayErrorRateHigh"]),
        ]
        pools = [
            [
                entry["payload"]["alerts"][0]["labels"].get("pool")
                for entry in json.loads(row["bodies"])
            ]
            for row in rows
        ]
        assert pools == [["a", "b", "c"], [None]]

    async def test_heads_name_each_records_alerts_without_reading_its_bodies(
        self, pool: asyncpg.Pool
    ) -> None:
        async with pool.acquire() as connection:
            await intake_log.append(
                connection,
                T0,
                [
                    Record(1, 3, ("A", "B"), b"[]"),
                    Record(2, 2, None, b"[]"),
                    Record(1, 1, (), b"[]"),
                ],
            )
            heads = await intake_log.heads(connection, 2)
        first = heads[0].id
        assert heads == [Head(first, 3, ("A", "B")), Head(first + 1, 2, None)]

    async def test_only_the_named_records_are_expanded(self, pool: asyncpg.Pool) -> None:
        records = [
            Record(1, 1, ("PgBouncerPoolSaturated",), log_record([_entry(alert(cluster=c))]))
            for c in ("eu-1", "eu-2", "eu-3")
        ]
        async with pool.acquire() as connection, connection.transaction():
            await intake_log.append(connection, T0, records)
            second = (await intake_log.heads(connection, 3))[1].id
            expanded = await intake_log.expand(connection, 500, T0, only=[second])
        assert [s.signal.labels["cluster"] for s in expanded.fresh] == ["eu-2"]
        left = await pool.fetchval("SELECT array_agg(id ORDER BY id) FROM intake_log")
        assert left == [second - 1, second + 1]

    async def test_engines_hear_each_records_alert_names(self, pool: asyncpg.Pool) -> None:
        heard: asyncio.Queue[str] = asyncio.Queue()

        def hear(*args: Any) -> None:
            heard.put_nowait(args[3])  # (connection, pid, channel, payload)

        records = [Record(1, 1, ("A", "B"), b"[]"), Record(1, 1, None, b"[]")]
        async with pool.acquire() as listener:
            await listener.add_listener(INTAKE_CHANNEL, hear)
            async with pool.acquire() as connection:
                await intake_log.append(connection, T0, records)
            payloads = [await asyncio.wait_for(heard.get(), 5) for _ in records]
            await listener.remove_listener(INTAKE_CHANNEL, hear)
        assert [intake_log.payload_names(p) for p in payloads] == [("A", "B"), None]


class TestBacklog:
    async def test_alerts_of_unexpanded_records_wait_since_the_first_arrived(
        self, pool: asyncpg.Pool
    ) -> None:
        async with pool.acquire() as connection:
            assert await intake_log.backlog(connection) == Backlog()
            await intake_log.append(connection, T0, [Record(1, 3, ("A",), b"{}")])
            await intake_log.append(
                connection, T0 + timedelta(seconds=5), [Record(2, 2, (), b"{}")]
            )
            assert await intake_log.backlog(connection) == Backlog(5, T0)
            assert await waiting_in(connection, "pending_signals") == Backlog()

    async def test_queued_and_backlogged_signals_wait_since_the_first_arrived(
        self, pool: asyncpg.Pool
    ) -> None:
        def stored_at(delay: int, *alerts: dict[str, Any]) -> list[Signal]:
            body = json.dumps(payload(*alerts)).encode()
            return to_signals(parse_payload(body), T0 + timedelta(seconds=delay))

        async with pool.acquire() as connection:
            assert await waiting_in(connection, "group_backlog") == Backlog()
            await inbox.insert_signals(connection, stored_at(10, alert("A", n="1")))
            held: list[inbox.PendingSignal] = []
            for delay, n in ((5, "1"), (20, "2")):
                signals = stored_at(delay, alert("B", n=n))
                held += (await inbox.insert_signals(connection, signals, queue=False))[1]
            await backlog.carry(connection, [(("rule-b", "{}"), item.id) for item in held])
            assert await waiting_in(connection, "pending_signals") == Backlog(
                1, T0 + timedelta(seconds=10)
            )
            assert await waiting_in(connection, "group_backlog") == Backlog(
                2, T0 + timedelta(seconds=5)
            )

    @pytest.mark.parametrize(
        ("first", "second", "total"),
        [
            pytest.param(Backlog(), Backlog(), Backlog(), id="nothing waits"),
            pytest.param(Backlog(3, T0), Backlog(), Backlog(3, T0), id="one side waits"),
            pytest.param(
                Backlog(3, T0 + timedelta(seconds=1)),
                Backlog(2, T0),
                Backlog(5, T0),
                id="the earlier arrival is the oldest",
            ),
        ],
    )
    def test_backlogs_add_up(self, first: Backlog, second: Backlog, total: Backlog) -> None:
        assert first + second == total
