"""During a storm a person gets at most five pages one by one within two minutes; the rest arrive
bundled in digests, every incident exactly once, each with its own ack link. The count lives in
the outbox, so replicas share it, and a digest that fails is retried as a digest."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg

from detector.engine.bundling import Bundling, dispatch
from detector.engine.cycle import Engine
from detector.ruleset.channel_specs import EmailTarget, PagerDutyTarget
from detector.ruleset.live import Routes
from detector.service.metrics import Metrics
from detector.store import outbox
from responders.channels.protocol import DeliveryError, FailureReason
from responders.messages import DigestMessage, Message, MessageKind, PageMessage
from tests.fakes import FakeClock, RecordingChannel
from tests.people import engine_for, open_incidents, page_person, person, routes_with

MAIL = EmailTarget(type="email", to="alice@shop.example")
TAKES_DIGESTS = {MessageKind.PAGE, MessageKind.DIGEST}


def shared_channels() -> dict[str, RecordingChannel]:
    """The shop rules' own channels, so their pages go somewhere."""
    return {name: RecordingChannel(name, {MessageKind.PAGE}) for name in ("pager", "backup")}


def storm_routes(rules_dir: Path, alice: RecordingChannel) -> Routes:
    channels = {**shared_channels(), alice.name: alice}
    return routes_with(rules_dir, [person("alice", MAIL)], channels)


async def wave(
    pool: asyncpg.Pool, engine: Engine, clock: FakeClock, clusters: list[str], key: str
) -> list[int]:
    """Open an incident per cluster, page ``key`` about each, and deliver."""
    ids = await open_incidents(pool, engine, clock, clusters)
    await page_person(pool, ids, key, clock.now())
    await engine.run_once()
    return ids


def incidents_in(message: Message) -> list[int]:
    if isinstance(message, DigestMessage):
        return [bundled.page.incident_id for bundled in message.pages]
    assert isinstance(message, PageMessage)
    return [message.page.incident_id]


class TestStormBundling:
    async def test_thirty_incidents_in_a_minute_make_five_pages_and_digests(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        clock = FakeClock()
        alice = RecordingChannel("person:alice:0", TAKES_DIGESTS)
        metrics = Metrics()
        engine = engine_for(pool, storm_routes(rules_dir, alice), clock, metrics)

        opened: list[int] = []
        for start in (0, 10, 20):  # ten new incidents every 20 seconds
            clusters = [f"db-{n}" for n in range(start, start + 10)]
            opened += await wave(pool, engine, clock, clusters, "person:alice:0")
            clock.advance(timedelta(seconds=20))

        messages = [message for message, _ in alice.sent]
        singles = [m for m in messages if isinstance(m, PageMessage)]
        digests = [m for m in messages if isinstance(m, DigestMessage)]
        assert [m.page.incident_id for m in singles] == opened[:5]
        assert [len(d.pages) for d in digests] == [5, 10, 10]
        received = [incident for m in messages for incident in incidents_in(m)]
        assert sorted(received) == sorted(opened)  # every incident exactly once
        acks = {bundled.links.acknowledge for d in digests for bundled in d.pages}
        assert len(acks) == 25
        assert None not in acks
        assert metrics.registry.get_sample_value("stormwatch_pages_bundled_total") == 25
        bundled_entries = await pool.fetchval(
            "SELECT count(*) FROM timeline WHERE kind = 'page.delivered'"
            " AND detail->>'channel' = 'person:alice:0' AND (detail->>'bundled')::boolean"
        )
        assert bundled_entries == 25

        # two minutes after the first pages went out, one by one again
        clock.advance(timedelta(minutes=1, seconds=1))
        [late] = await wave(pool, engine, clock, ["db-late"], "person:alice:0")
        message, _ = alice.sent[-1]
        assert isinstance(message, PageMessage)
        assert message.page.incident_id == late

    async def test_a_channel_without_digests_gets_every_page(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        clock = FakeClock()
        pagerduty = RecordingChannel("person:bob:0", {MessageKind.PAGE})
        target = PagerDutyTarget(type="pagerduty", routing_key_env="BOB_PD_KEY")
        channels = {**shared_channels(), pagerduty.name: pagerduty}
        routes = routes_with(rules_dir, [person("bob", target)], channels)
        engine = engine_for(pool, routes, clock, Metrics())

        opened = await wave(pool, engine, clock, [f"db-{n}" for n in range(8)], "person:bob:0")
        assert [type(m) for m, _ in pagerduty.sent] == [PageMessage] * 8
        assert sorted(i for m, _ in pagerduty.sent for i in incidents_in(m)) == sorted(opened)

    async def test_a_failed_digest_is_retried_as_a_digest(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        clock = FakeClock()
        alice = RefusesFirstDigest("person:alice:0", TAKES_DIGESTS)
        routes = storm_routes(rules_dir, alice)
        engine = engine_for(pool, routes, clock, Metrics(), Bundling(limit=2))

        first = await wave(pool, engine, clock, [f"db-{n}" for n in range(5)], "person:alice:0")
        assert [incidents_in(m) for m, _ in alice.sent] == [[first[0]], [first[1]]]
        later = await open_incidents(pool, engine, clock, ["db-5"])
        clock.advance(timedelta(seconds=10))  # the retry is due, and another page with it
        await page_person(pool, later, "person:alice:0", clock.now())
        await engine.run_once()

        *_, (retried, _) = alice.sent
        assert isinstance(retried, DigestMessage)
        assert incidents_in(retried) == first[2:] + later
        assert alice.refused == [first[2:]]

    async def test_replicas_deciding_at_once_share_one_allowance(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        clock = FakeClock()
        alice = RecordingChannel("person:alice:0", TAKES_DIGESTS)
        routes = storm_routes(rules_dir, alice)
        engine = engine_for(pool, routes, clock, Metrics())
        opened = await open_incidents(pool, engine, clock, [f"db-{n}" for n in range(30)])
        await page_person(pool, opened, "person:alice:0", clock.now())

        async def replica(owner: str) -> list[list[int]]:
            async with pool.acquire() as connection:
                claimed = await outbox.claim_due(
                    connection, owner, clock.now(), timedelta(seconds=30), 15
                )
            plan = await dispatch(pool, routes, claimed, Bundling(), clock.now())
            return [[m.incident_id for m in send.messages] for send in plan.sends if send.digest]

        one, other = await asyncio.gather(replica("replica-a"), replica("replica-b"))
        bundled = [incident for digest in one + other for incident in digest]
        assert len(bundled) == 25
        alone = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE dispatched_at IS NOT NULL AND NOT bundled"
        )
        assert alone == 5


class RefusesFirstDigest(RecordingChannel):
    """Takes pages and digests, but the relay is busy for the first digest."""

    def __init__(self, name: str, kinds: set[MessageKind]) -> None:
        super().__init__(name, kinds)
        self.refused: list[list[int]] = []

    async def send(self, message: Message, idempotency_key: str) -> None:
        if isinstance(message, DigestMessage) and not self.refused:
            self.refused.append(incidents_in(message))
            raise DeliveryError(FailureReason.SERVER_ERROR, retryable=True, detail="SMTP 451")
        await super().send(message, idempotency_key)
