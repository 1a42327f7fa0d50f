"""What each component shows (hand-set, incidents, maintenance, operational), public
maintenance from rule files, and escaping in the HTML and feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detector.ruleset.loader import load_ruleset
from detector.ruleset.rules import RuleSet
from detector.web.status_state import StoredPage, page_info, page_state, public_key
from responders.statuspage import feeds, html
from responders.statuspage.model import (
    ComponentLevel,
    ComponentOverride,
    Impact,
    IncidentStatus,
    MaintenanceStatus,
    PublicIncident,
    PublicUpdate,
)
from tests.unit.test_rule_loading import RULE, SHARED, load_errors, rules_dir

L = ComponentLevel
# Monday 2026-03-02, 03:00 in Berlin: inside the nightly window below.
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
WINDOW = """\
maintenance_windows:
  - name: nightly-vacuum
    rules: [pool-exhausted]
    location: Europe/Berlin
    start: "02:30"
    end: "04:00"
    comment: VACUUM FULL on db-eu-1
    public:
      title: Checkout maintenance
      message: Checkout may be slow for a few minutes.
      components: [checkout]
"""
PAGE = page_info("Acme", "https://status.acme.example", "Europe/Berlin")


def incident(level_impact: Impact = Impact.MAJOR) -> PublicIncident:
    update = PublicUpdate("u" * 12, IncidentStatus.INVESTIGATING, "Broken <b>now</b>", NOW, NOW)
    return PublicIncident(
        1, "i" * 12, "checkout", "Checkout & <co>", IncidentStatus.INVESTIGATING, level_impact,
        ("checkout",), NOW - timedelta(minutes=3), NOW, updates=(update,),
    )  # fmt: skip


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return load_ruleset(rules_dir(tmp_path, {"s.yml": SHARED, "r.yml": RULE, "w.yml": WINDOW}))


@pytest.mark.parametrize(
    ("stored", "at", "expected"),
    [
        pytest.param(StoredPage((), {}, {}), NOW, L.UNDER_MAINTENANCE, id="window running"),
        pytest.param(
            StoredPage((), {}, {}), NOW + timedelta(hours=3), L.OPERATIONAL, id="after window"
        ),
        pytest.param(
            StoredPage((incident(),), {"checkout": L.PARTIAL_OUTAGE}, {}),
            NOW,
            L.PARTIAL_OUTAGE,
            id="an outage outranks maintenance",
        ),
        pytest.param(
            StoredPage(
                (incident(),),
                {"checkout": L.PARTIAL_OUTAGE},
                {"checkout": ComponentOverride("checkout", L.OPERATIONAL, "ana", NOW)},
            ),
            NOW,
            L.OPERATIONAL,
            id="a person's status wins",
        ),
    ],
)
def test_component_status(
    rules, stored: StoredPage, at: datetime, expected: ComponentLevel
) -> None:  # type: ignore[no-untyped-def]
    state = page_state(rules, PAGE, stored, at)

    (checkout,) = state.components
    assert checkout.status is expected
    assert checkout.id == public_key("component", "checkout")


def test_a_public_window_lists_its_last_running_and_next_occurrences(rules: RuleSet) -> None:
    state = page_state(rules, PAGE, StoredPage((), {}, {}), NOW)

    listed = [(m.status(NOW), m.scheduled_for) for m in state.maintenances]
    assert listed == [
        (MaintenanceStatus.COMPLETED, datetime(2026, 3, 1, 1, 30, tzinfo=UTC)),
        (MaintenanceStatus.IN_PROGRESS, datetime(2026, 3, 2, 1, 30, tzinfo=UTC)),
        (MaintenanceStatus.SCHEDULED, datetime(2026, 3, 3, 1, 30, tzinfo=UTC)),
    ]
    assert {m.name for m in state.maintenances} == {"Checkout maintenance"}
    assert "nightly" not in "".join(m.public_id for m in state.maintenances)


def test_a_window_without_a_public_block_stays_internal(tmp_path: Path) -> None:
    private = WINDOW.split("    public:", maxsplit=1)[0]
    ruleset = load_ruleset(rules_dir(tmp_path, {"s.yml": SHARED, "r.yml": RULE, "w.yml": private}))

    state = page_state(ruleset, PAGE, StoredPage((), {}, {}), NOW)

    assert state.maintenances == ()
    assert state.components[0].status is L.OPERATIONAL


def test_a_public_window_names_known_components(tmp_path: Path) -> None:
    directory = rules_dir(
        tmp_path, {"s.yml": SHARED, "r.yml": RULE, "w.yml": WINDOW.replace("[checkout]", "[cart]")}
    )

    assert load_errors(directory) == [
        f"{directory}/w.yml:11: maintenance_windows[0].public.components[0]:"
        " unknown component 'cart'"
    ]


def test_html_and_feeds_escape_what_people_wrote(rules: RuleSet) -> None:
    state = page_state(
        rules, PAGE, StoredPage((incident(),), {"checkout": L.PARTIAL_OUTAGE}, {}), NOW
    )

    page = html.render(state)
    atom = feeds.atom(state).decode()
    rss = feeds.rss(state).decode()

    assert "Checkout &amp; &lt;co&gt;" in page
    assert "Broken &lt;b&gt;now&lt;/b&gt;" in page
    assert "<b>now" not in page
    assert '<meta http-equiv="refresh"' in page
    assert "<main" in page
    assert "Partial outage" in page  # the status in words, not colour alone
    assert "<script" not in page
    for feed in (atom, rss):
        assert "Checkout &amp; &lt;co&gt;" in feed
        assert "<b>now" not in feed
