"""Silences and maintenance windows in rule files: incidents recorded, nobody paged meanwhile."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import RULES, Shop, alert
from tests.fakes import T0, PageReceiver

WINDOWS = """
silences:
  - name: eu-1-pgbouncer-upgrade
    match: ['cluster="eu-1"']
    starts_at: 2026-11-27T08:30:00Z
    ends_at: 2026-11-27T10:00:00Z
    comment: PgBouncer 1.23 rollout, pools restart one by one
    created_by: maria
maintenance_windows:
  - name: nightly-vacuum
    rules: [checkout-errors]
    location: Europe/Berlin
    weekdays: ['monday:sunday']
    start: "10:00"
    end: "10:30"
    comment: Nightly maintenance of the checkout database
"""


US_1_FROM_0902 = """silences:
  - name: us-1-failover-drill
    match: ['cluster="us-1"']
    starts_at: 2026-11-27T09:02:00Z
    ends_at: 2026-11-27T10:00:00Z
    comment: planned failover drill
    created_by: maria
"""


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "shop.yml").write_text(RULES.format(pager_url=pager.url, backup_url=backup.url))
    (directory / "windows.yml").write_text(WINDOWS)
    return directory


class TestSilence:
    async def test_incident_recorded_but_pages_held_until_the_silence_ends(
        self, shop: Shop
    ) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [incident] = await shop.incidents()
        assert incident["state"] == "triggered"
        assert shop.pager.requests == []
        detail = await shop.incident(incident["id"])
        [muted] = [e for e in detail["timeline"] if e["kind"] == "pages.muted"]
        assert muted["detail"] == {
            "window": "eu-1-pgbouncer-upgrade",
            "until": "2026-11-27T10:00:00+00:00",
            "channels": ["pager"],
        }
        await shop.advance(timedelta(minutes=59))
        assert shop.pager.requests == []
        await shop.advance(timedelta(minutes=1))
        assert len(shop.pager.delivered("triggered")) == 1, "still open when the silence ends: page"
        await shop.advance(timedelta(minutes=5))
        assert len(shop.backup.delivered("triggered")) == 1, "and escalation goes on from there"

    async def test_incident_resolved_inside_the_silence_never_pages(self, shop: Shop) -> None:
        firing = alert(cluster="eu-1")
        await shop.post_alerts(firing)
        await shop.cycle()
        await shop.advance(timedelta(minutes=20))
        await shop.post_alerts({**firing, "status": "resolved"})
        await shop.advance(timedelta(hours=2))
        assert (await shop.incidents())[0]["state"] == "resolved"
        assert shop.pager.requests == []
        assert shop.backup.requests == []

    async def test_firing_again_after_the_silence_pages_the_first_step(self, shop: Shop) -> None:
        firing = alert(cluster="eu-1")
        await shop.post_alerts(firing)
        await shop.cycle()
        await shop.advance(timedelta(minutes=55))
        await shop.post_alerts({**firing, "status": "resolved"})
        await shop.cycle()
        await shop.advance(timedelta(minutes=6))  # 10:01, the silence is over
        await shop.post_alerts(alert(cluster="eu-1", starts_at=T0 + timedelta(minutes=61)))
        await shop.cycle()
        [incident] = await shop.incidents()
        assert incident["state"] == "triggered", "reopened within reopen_within"
        assert [p["event"] for p in shop.pager.delivered()] == ["reopened"]
        await shop.advance(timedelta(minutes=5))
        assert len(shop.backup.delivered("triggered")) == 1, "escalation goes on from step 0"

    async def test_deleting_the_silence_releases_its_pages_at_once(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        await shop.post_alerts(
            alert(cluster="eu-1"), alert("CheckoutErrorSpike", service="checkout")
        )
        await shop.cycle()
        assert shop.pager.requests == []
        without_silence = WINDOWS[WINDOWS.index("maintenance_windows:") :]
        (rules_dir / "windows.yml").write_text(without_silence)
        assert (await shop.client.post("/api/v1/rules/reload")).status == 200
        await shop.advance(timedelta(minutes=1))
        paged = [p["incident"]["title"] for p in shop.pager.delivered("triggered")]
        assert paged == ["Connection pool exhausted on eu-1"], "the window still in force holds"
        [checkout] = [i for i in await shop.incidents() if i["rule"] == "checkout-errors"]
        muted = [
            e
            for e in (await shop.incident(checkout["id"]))["timeline"]
            if e["kind"] == "pages.muted"
        ]
        assert [m["detail"]["window"] for m in muted] == ["nightly-vacuum", "nightly-vacuum"]

    async def test_a_reopen_held_by_the_silence_sends_no_notices_later(self, shop: Shop) -> None:
        first = alert(cluster="eu-1")
        await shop.post_alerts(first)
        await shop.cycle()
        await shop.advance(timedelta(minutes=10))
        await shop.post_alerts({**first, "status": "resolved"})
        await shop.advance(timedelta(minutes=5))
        again = alert(cluster="eu-1", starts_at=T0 + timedelta(minutes=15))
        await shop.post_alerts(again)
        await shop.cycle()
        [incident] = await shop.incidents()
        await shop.client.post(f"/api/v1/incidents/{incident['id']}/ack")
        await shop.advance(timedelta(minutes=50))  # 10:05, the silence is over
        await shop.post_alerts({**again, "status": "resolved"})
        await shop.advance(timedelta(minutes=1))
        assert (await shop.incident(incident["id"]))["state"] == "resolved"
        assert shop.pager.requests == [], "the pager never heard of this incident"

    async def test_who_was_paged_before_the_silence_still_hears_of_the_resolution(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        shop_rules = rules_dir / "shop.yml"
        shop_rules.write_text(
            shop_rules.read_text().replace("- notify: [backup]", "- notify: [pager, backup]")
        )
        later_silence = WINDOWS.replace("silences:\n", US_1_FROM_0902, 1)
        (rules_dir / "windows.yml").write_text(later_silence)
        assert (await shop.client.post("/api/v1/rules/reload")).status == 200
        firing = alert(cluster="us-1")
        await shop.post_alerts(firing)
        await shop.cycle()
        assert len(shop.pager.delivered("triggered")) == 1, "paged before the silence began"
        await shop.advance(timedelta(minutes=5))  # step 2 (pager and backup) falls due, held
        [incident] = await shop.incidents()
        await shop.client.post(f"/api/v1/incidents/{incident['id']}/ack")  # notice held too
        await shop.advance(timedelta(minutes=60))  # 10:05, the silence is over
        await shop.post_alerts({**firing, "status": "resolved"})
        await shop.cycle()
        assert [p["event"] for p in shop.pager.delivered()] == ["triggered", "resolved"]
        assert shop.backup.requests == [], "the backup never heard of it"

    async def test_other_clusters_still_page(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="us-1"))
        await shop.cycle()
        assert len(shop.pager.delivered("triggered")) == 1


class TestRecurringWindow:
    async def test_rule_named_by_the_window_is_held_during_it(self, shop: Shop) -> None:
        # 09:00 UTC is 10:00 in Berlin on 27 November: inside nightly-vacuum's 10:00-10:30.
        spike = alert("CheckoutErrorSpike", service="checkout")
        await shop.post_alerts(spike)
        await shop.cycle()
        assert shop.pager.requests == []
        for _ in range(3):  # Alertmanager's repeats keep it from resolving by silence
            await shop.advance(timedelta(minutes=10))
            await shop.post_alerts(spike)
        assert len(shop.pager.delivered("triggered")) == 1


class TestWindowValidation:
    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            (
                "silences: [{name: s, rules: [nope], comment: c,"
                " starts_at: 2026-11-27T08:00:00Z, ends_at: 2026-11-27T09:00:00Z}]",
                "silences[0].rules[0]: unknown rule 'nope'",
            ),
            (
                "silences: [{name: s, match: ['a=\"b\"'], comment: c,"
                " starts_at: 2026-11-27T08:00:00, ends_at: 2026-11-27T09:00:00Z}]",
                "silences[0].starts_at",
            ),
            (
                "maintenance_windows: [{name: w, rules: [pool-exhausted], comment: c,"
                " location: Mars/Olympus, start: '01:00', end: '02:00'}]",
                "maintenance_windows[0].location",
            ),
        ],
        ids=["unknown rule", "time without offset", "unknown time zone"],
    )
    async def test_bad_window_is_rejected_on_reload(
        self, shop: Shop, rules_dir: Path, text: str, reason: str
    ) -> None:
        (rules_dir / "windows.yml").write_text(text + "\n")
        response = await shop.client.post("/api/v1/rules/reload")
        assert response.status == 422
        [error] = (await response.json())["last_reload"]["errors"]
        assert f"{rules_dir / 'windows.yml'}:1: {reason}" in error
