"""A channel added through the registry alone receives typed messages from the real outbox, and
a kind it does not deliver is dead-lettered with the reason on the timeline, never sent."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import asyncpg

from detector.engine.actions import acknowledge
from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer, Outcome
from detector.ruleset.channel_specs import WebhookChannelSpec
from detector.ruleset.live import LiveRules
from detector.service.app import build_channels
from detector.service.metrics import Metrics
from detector.web.ack_links import LinkBuilder
from responders.channels.protocol import FailureReason
from responders.channels.registry import ChannelRegistry
from responders.messages import MessageKind, PageEvent, PageMessage
from tests.conftest import alert, store_alerts
from tests.fakes import FakeClock, RecordingChannel


class TestStubChannelThroughTheOutbox:
    async def test_pages_arrive_typed_and_an_unsupported_kind_is_dead_lettered(
        self, pool: asyncpg.Pool, rules_dir: Path
    ) -> None:
        # the rules page "pager" first and escalate to "backup" after 5m; here both are stubs:
        # the pager delivers pages, the backup delivers no kind at all
        stubs = {
            "pager": RecordingChannel("pager", {MessageKind.PAGE}),
            "backup": RecordingChannel("backup", ()),
        }
        registry = ChannelRegistry()
        registry.register(WebhookChannelSpec, lambda name, spec: stubs[name])
        clock = FakeClock()
        rules = LiveRules(rules_dir, lambda r: build_channels(r, registry), clock.now)
        links = LinkBuilder("https://sw.example", b"k", timedelta(hours=1), clock)
        engine = Engine(
            pool, lambda: rules.routes, Deliverer(links, random.Random(7)), clock, Metrics()
        )

        await store_alerts(pool, clock, alert(cluster="eu-1"))
        opened = await engine.run_once()
        [(message, key)] = stubs["pager"].sent
        assert isinstance(message, PageMessage)
        page = message.page
        assert (page.event, page.title, page.step) == (
            PageEvent.TRIGGERED,
            "Connection pool exhausted on eu-1",
            0,
        )
        assert page.group == {"cluster": "eu-1"}
        assert message.links.incident == f"https://sw.example/api/v1/incidents/{page.incident_id}"
        assert (message.links.acknowledge or "").startswith("https://sw.example/ack/")
        assert key == f"{page.incident_id}:{page.epoch}:triggered:0:pager"
        assert [(d.outcome, d.reason) for d in opened.deliveries] == [(Outcome.DELIVERED, "")]

        clock.advance(timedelta(minutes=5))
        escalated = await engine.run_once()
        assert stubs["backup"].sent == []
        assert [(d.message.channel, d.outcome, d.reason) for d in escalated.deliveries] == [
            ("backup", Outcome.DEAD, FailureReason.UNSUPPORTED_KIND)
        ]
        row = await pool.fetchrow(
            "SELECT state, attempts, last_error FROM outbox WHERE channel = 'backup'"
        )
        assert dict(row) == {"state": "dead", "attempts": 1, "last_error": "unsupported_kind"}
        dead = await pool.fetchval(
            "SELECT detail FROM timeline WHERE incident_id = $1 AND kind = 'page.dead_lettered'",
            page.incident_id,
        )
        assert dead == {
            "channel": "backup",
            "event": "triggered",
            "attempt": 1,
            "reason": "unsupported_kind",
        }

        await acknowledge(pool, page.incident_id, "maria", "api", rules.current, clock.now())
        await engine.run_once()
        [_, (update, _)] = stubs["pager"].sent
        assert isinstance(update, PageMessage)
        assert (update.page.event, update.links.acknowledge) == (PageEvent.ACKNOWLEDGED, None)
