"""Statuspage v2 documents from fixed data: exact JSON, every key present, Statuspage's enums,
and which incidents and maintenances each endpoint lists."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responders.statuspage import documents
from responders.statuspage.levels import indicator
from responders.statuspage.model import (
    AffectedComponent,
    Component,
    ComponentLevel,
    Impact,
    IncidentStatus,
    Maintenance,
    MaintenanceStatus,
    PageInfo,
    PageState,
    PublicIncident,
    PublicUpdate,
)

L = ComponentLevel
T = datetime(2026, 3, 2, 14, 5, 11, 870000, tzinfo=UTC)
PAGE = PageInfo("shp7x2k9q4ab", "Acme Shop", "https://status.acme-shop.example", "Etc/UTC")
CHECKOUT = Component(
    "cmpcheckout01",
    "checkout",
    "Checkout & Payments",
    "Cart, checkout and card payments",
    1,
    L.PARTIAL_OUTAGE,
    T,
)
CATALOG = Component("cmpcatalog001", "catalog", "Product catalog & search", "", 2, L.OPERATIONAL)
FIRST = PublicUpdate(
    "upd1a2s3d4f5",
    IncidentStatus.INVESTIGATING,
    "Some customers cannot pay.",
    T,
    T,
    T + timedelta(minutes=30),
    (AffectedComponent("checkout", L.OPERATIONAL, L.PARTIAL_OUTAGE),),
)
OPEN = PublicIncident(
    1,
    "inc4k2m8z0qp",
    "checkout",
    "Some card payments failing",
    IncidentStatus.INVESTIGATING,
    Impact.MAJOR,
    ("checkout",),
    T,
    T,
    updates=(FIRST,),
)
RESOLVED = PublicIncident(
    2,
    "incold0000001",
    "catalog",
    "Search was slow",
    IncidentStatus.RESOLVED,
    Impact.MINOR,
    ("catalog",),
    T - timedelta(days=3),
    T - timedelta(days=3),
    resolved_at=T - timedelta(days=3),
)
UPCOMING = Maintenance(
    "mnt5t6y7u8i9",
    "Search index upgrade",
    "Search may be slow for up to 30 minutes.",
    ("catalog",),
    T + timedelta(days=3),
    T + timedelta(days=3, minutes=30),
)
RUNNING = Maintenance(
    "mntrunning001",
    "Card reader update",
    "",
    ("checkout",),
    T - timedelta(minutes=5),
    T + timedelta(minutes=25),
)
DONE = Maintenance(
    "mntdone000001", "Old upgrade", "", (), T - timedelta(days=1), T - timedelta(hours=23)
)
NOW = T + timedelta(minutes=1)
STATE = PageState(PAGE, (CHECKOUT, CATALOG), (OPEN, RESOLVED), (DONE, RUNNING, UPCOMING), NOW)

CHECKOUT_JSON = {
    "id": "cmpcheckout01", "name": "Checkout & Payments", "status": "partial_outage",
    "created_at": "2026-03-02T14:05:11.870Z", "updated_at": "2026-03-02T14:05:11.870Z",
    "position": 1, "description": "Cart, checkout and card payments", "showcase": True,
    "start_date": None, "group_id": None, "page_id": "shp7x2k9q4ab", "group": False,
    "only_show_if_degraded": False,
}  # fmt: skip
OPEN_JSON = {
    "id": "inc4k2m8z0qp", "name": "Some card payments failing", "status": "investigating",
    "created_at": "2026-03-02T14:05:11.870Z", "updated_at": "2026-03-02T14:05:11.870Z",
    "monitoring_at": None, "resolved_at": None, "impact": "major",
    "shortlink": "https://status.acme-shop.example/status#inc4k2m8z0qp",
    "started_at": "2026-03-02T14:05:11.870Z", "page_id": "shp7x2k9q4ab",
    "incident_updates": [
        {"id": "upd1a2s3d4f5", "status": "investigating", "body": "Some customers cannot pay.",
         "incident_id": "inc4k2m8z0qp", "created_at": "2026-03-02T14:05:11.870Z",
         "updated_at": "2026-03-02T14:05:11.870Z", "display_at": "2026-03-02T14:05:11.870Z",
         "affected_components": [{"code": "cmpcheckout01", "name": "Checkout & Payments",
                                  "old_status": "operational", "new_status": "partial_outage"}],
         "deliver_notifications": True, "custom_tweet": None, "tweet_id": None},
    ],
    "components": [CHECKOUT_JSON],
}  # fmt: skip
PAGE_JSON = {
    "id": "shp7x2k9q4ab", "name": "Acme Shop", "url": "https://status.acme-shop.example",
    "time_zone": "Etc/UTC", "updated_at": "2026-03-02T14:05:11.870Z",
}  # fmt: skip


def test_summary_is_exactly_statuspages_shape() -> None:
    summary = documents.summary(STATE)

    assert list(summary) == ["page", "status", "components", "incidents", "scheduled_maintenances"]
    assert summary["page"] == PAGE_JSON
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert summary["components"][0] == CHECKOUT_JSON
    assert summary["incidents"] == [OPEN_JSON]
    assert [m["id"] for m in summary["scheduled_maintenances"]] == ["mntrunning001", "mnt5t6y7u8i9"]


def test_a_scheduled_maintenance_is_an_incident_object_with_its_schedule() -> None:
    (upcoming,) = documents.maintenances(STATE, MaintenanceStatus.SCHEDULED)[
        "scheduled_maintenances"
    ]

    assert upcoming == {
        "id": "mnt5t6y7u8i9", "name": "Search index upgrade", "status": "scheduled",
        "created_at": "2026-03-05T14:05:11.870Z", "updated_at": "2026-03-05T14:05:11.870Z",
        "monitoring_at": None, "resolved_at": None, "impact": "maintenance",
        "shortlink": "https://status.acme-shop.example/status#mnt5t6y7u8i9",
        "started_at": "2026-03-05T14:05:11.870Z", "page_id": "shp7x2k9q4ab",
        "incident_updates": [
            {"id": "mnt5t6y7u8i9-scheduled", "status": "scheduled",
             "body": "Search may be slow for up to 30 minutes.", "incident_id": "mnt5t6y7u8i9",
             "created_at": "2026-03-05T14:05:11.870Z", "updated_at": "2026-03-05T14:05:11.870Z",
             "display_at": "2026-03-05T14:05:11.870Z", "affected_components": None,
             "deliver_notifications": False, "custom_tweet": None, "tweet_id": None},
        ],
        "components": [{**CHECKOUT_JSON, **{
            "id": "cmpcatalog001", "name": "Product catalog & search", "status": "operational",
            "position": 2, "description": None}}],
        "scheduled_for": "2026-03-05T14:05:11.870Z",
        "scheduled_until": "2026-03-05T14:35:11.870Z",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("build", "key", "ids"),
    [
        (documents.incidents, "incidents", ["inc4k2m8z0qp", "incold0000001"]),
        (documents.unresolved, "incidents", ["inc4k2m8z0qp"]),
        (documents.maintenances, "scheduled_maintenances",
         ["mntdone000001", "mntrunning001", "mnt5t6y7u8i9"]),
        (lambda s: documents.maintenances(s, MaintenanceStatus.SCHEDULED),
         "scheduled_maintenances", ["mnt5t6y7u8i9"]),
        (lambda s: documents.maintenances(s, MaintenanceStatus.IN_PROGRESS),
         "scheduled_maintenances", ["mntrunning001"]),
        (documents.components, "components", ["cmpcheckout01", "cmpcatalog001"]),
    ],
)  # fmt: skip
def test_each_endpoint_lists_what_statuspage_lists(
    build: Callable[[PageState], dict[str, Any]], key: str, ids: list[str]
) -> None:
    document = build(STATE)

    assert list(document) == ["page", key]
    assert document["page"] == PAGE_JSON
    assert [item["id"] for item in document[key]] == ids


def test_status_json_and_the_resolved_incident_object() -> None:
    resolved = documents.incidents(STATE)["incidents"][1]

    assert documents.status(STATE) == {
        "page": PAGE_JSON,
        "status": {"indicator": "major", "description": "Partial System Outage"},
    }
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] == "2026-02-27T14:05:11.870Z"
    assert resolved["incident_updates"] == []


def test_times_carry_the_page_zones_offset() -> None:
    assert documents.timestamp(T, "Europe/Berlin") == "2026-03-02T15:05:11.870+01:00"
    assert documents.timestamp(T, "Etc/UTC") == "2026-03-02T14:05:11.870Z"


def test_the_banner_is_small_and_says_what_is_open() -> None:
    banner = documents.banner(STATE)

    assert banner == {
        "status": {"indicator": "major", "description": "Partial System Outage"},
        "url": "https://status.acme-shop.example",
        "updated_at": "2026-03-02T14:05:11.870Z",
        "incidents": [
            {"name": "Some card payments failing", "status": "investigating", "impact": "major",
             "shortlink": "https://status.acme-shop.example/status#inc4k2m8z0qp",
             "updated_at": "2026-03-02T14:05:11.870Z",
             "latest_update": "Some customers cannot pay."},
        ],
        "maintenances": [
            {"name": "Card reader update", "status": "in_progress",
             "scheduled_for": "2026-03-02T14:00:11.870Z",
             "scheduled_until": "2026-03-02T14:30:11.870Z"},
            {"name": "Search index upgrade", "status": "scheduled",
             "scheduled_for": "2026-03-05T14:05:11.870Z",
             "scheduled_until": "2026-03-05T14:35:11.870Z"},
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("levels", "open_impacts", "expected"),
    [
        ([], [], (Impact.NONE, "All Systems Operational")),
        ([L.OPERATIONAL, L.OPERATIONAL], [], (Impact.NONE, "All Systems Operational")),
        ([L.DEGRADED_PERFORMANCE], [], (Impact.MINOR, "Degraded System Service")),
        ([L.DEGRADED_PERFORMANCE, L.PARTIAL_OUTAGE], [], (Impact.MAJOR, "Partial System Outage")),
        ([L.MAJOR_OUTAGE, L.UNDER_MAINTENANCE], [], (Impact.CRITICAL, "Major System Outage")),
        ([L.UNDER_MAINTENANCE], [], (Impact.NONE, "Service Under Maintenance")),
        ([L.OPERATIONAL], [Impact.MINOR], (Impact.MINOR, "Minor Service Outage")),
        ([L.DEGRADED_PERFORMANCE], [Impact.CRITICAL], (Impact.MINOR, "Degraded System Service")),
    ],
)
def test_page_indicator(
    levels: list[ComponentLevel], open_impacts: list[Impact], expected: tuple[Impact, str]
) -> None:
    incidents = [
        PublicIncident(n, "x", "c", "n", IncidentStatus.INVESTIGATING, impact, ("c",), T, T)
        for n, impact in enumerate(open_impacts)
    ]

    found = indicator({f"c{n}": level for n, level in enumerate(levels)}, incidents)

    assert (found.indicator, found.description) == expected
