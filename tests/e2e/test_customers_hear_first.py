"""The promise to customers, end to end: under ``stormwatch serve`` with the shipped rule pack, a
connection-pool alert puts a plain-language notice on the public status page within seconds."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import alert, payload
from tests.e2e.test_serve_process import SECRETS, Service

pytestmark = pytest.mark.e2e
INTERNAL = ("PgBouncer", "eu-1", "shop", "db-connection-pool-exhausted", "Saturated")


def summary(service: Service) -> dict[str, Any]:
    with urllib.request.urlopen(service.url("/api/v2/summary.json"), timeout=5) as answer:  # noqa: S310
        result: dict[str, Any] = json.loads(answer.read())
    return result


def test_a_pool_alert_is_on_the_status_page_within_five_seconds(tmp_path: Path) -> None:
    service = Service(tmp_path / "data", tmp_path / "serve.log")
    try:
        sent = time.monotonic()
        service.call(
            "/api/v1/alertmanager",
            payload(alert(severity="page", cluster="eu-1", database="shop")),
            SECRETS["STORMWATCH_WEBHOOK_TOKEN"],
        )
        while not (incidents := summary(service)["incidents"]):
            assert time.monotonic() - sent < 5, "no public notice within 5 s"
            time.sleep(0.1)
    finally:
        assert service.stop() == 0
    (incident,) = incidents
    body = incident["incident_updates"][0]["body"]
    assert incident["status"] == "investigating"
    assert body.startswith("We are looking into a problem with Checkout.")
    assert "Our next update will follow by" in body
    shown = json.dumps(incident)
    assert not [word for word in INTERNAL if word in shown]
