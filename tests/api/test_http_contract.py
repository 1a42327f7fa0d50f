"""The HTTP contract as Alertmanager, engineers and their tools see it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from detector.service.app import MAX_BODY_BYTES
from detector.service.logs import configure_logging
from detector.service.settings import LogFormat
from detector.web.ack_links import make_token
from detector.web.responses import edge
from tests.conftest import Shop, alert, events, payload
from tests.fakes import T0


class TestWebhookAuth:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"webhook_token": "am-token", "api_token": "api-token"}

    @pytest.mark.parametrize(
        "header",
        [
            pytest.param({}, id="no header"),
            pytest.param({"Authorization": "Bearer wrong"}, id="wrong token"),
            pytest.param({"Authorization": "Basic am-token"}, id="wrong scheme"),
            pytest.param(
                {"Authorization": "Bearer api-token"}, id="api token is not the webhook token"
            ),
        ],
    )
    async def test_webhook_rejects_without_token(self, shop: Shop, header: dict[str, str]) -> None:
        response = await shop.post_alerts(alert(cluster="eu-1"), headers=header)
        assert response.status == 401
        assert (await response.json())["field"] == "Authorization"
        await shop.cycle()
        assert await _incident_count(shop) == 0

    async def test_webhook_accepts_with_token(self, shop: Shop) -> None:
        response = await shop.post_alerts(
            alert(cluster="eu-1"), headers={"Authorization": "Bearer am-token"}
        )
        assert response.status == 200

    async def test_api_requires_token(self, shop: Shop) -> None:
        denied = await shop.client.get("/api/v1/incidents")
        assert denied.status == 401
        assert denied.headers["X-Request-Id"], "even a refusal can be found in the logs"
        ok = await shop.client.get(
            "/api/v1/incidents", headers={"Authorization": "Bearer api-token"}
        )
        assert ok.status == 200

    async def test_health_and_metrics_stay_open(self, shop: Shop) -> None:
        assert (await shop.client.get("/healthz")).status == 200
        assert (await shop.client.get("/readyz")).status == 200
        assert (await shop.client.get("/metrics")).status == 200


async def _incident_count(shop: Shop) -> int:
    rows = await shop.services.pool.fetchval("SELECT count(*) FROM incidents")
    return int(rows)


class TestWebhookValidation:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param(b"{not json", "body", id="invalid json"),
            pytest.param(
                b'{"version": "3", "status": "firing", "alerts": []}', "version", id="old version"
            ),
            pytest.param(b'{"version": "4", "status": "firing"}', "alerts", id="alerts missing"),
            pytest.param(
                b'{"version": "4", "status": "firing",'
                b' "alerts": [{"status": "firing", "labels": {"a": "b"}}]}',
                "alerts[0].startsAt",
                id="startsAt missing",
            ),
            pytest.param(
                b'{"version": "4", "status": "firing",'
                b' "alerts": [{"status": "burning", "labels": {"a": "b"},'
                b' "startsAt": "2026-11-27T09:00:00Z"}]}',
                "alerts[0].status",
                id="unknown status",
            ),
        ],
    )
    async def test_bad_payload_names_the_field_and_is_kept(
        self, shop: Shop, body: bytes, field: str
    ) -> None:
        response = await shop.client.post("/api/v1/alertmanager", data=body)
        assert response.status == 400
        answer = await response.json()
        assert answer["field"] == field
        assert answer["errors"][0]["reason"]
        kept = await (await shop.client.get("/api/v1/webhooks/rejected")).json()
        assert kept["rejected"][0]["field"] == field
        assert kept["rejected"][0]["body"] == body.decode()

    async def test_rejected_bodies_are_bounded(self, shop: Shop) -> None:
        for _ in range(shop.services.settings.rejected_keep + 5):
            await shop.client.post("/api/v1/alertmanager", data=b"{}")
        count = await shop.services.pool.fetchval("SELECT count(*) FROM rejected_webhooks")
        assert count == shop.services.settings.rejected_keep

    async def test_unknown_fields_from_newer_alertmanager_are_ignored(self, shop: Shop) -> None:
        body = payload(alert(cluster="eu-1"))
        body["notification_reason"] = "first notification"
        body["routeLabels"] = {"team": "db"}
        body["alerts"][0]["somethingNew"] = 1
        response = await shop.client.post("/api/v1/alertmanager", json=body)
        assert response.status == 200

    async def test_unmatched_signal_is_stored_and_listed(self, shop: Shop) -> None:
        await shop.post_alerts(alert("DiskAlmostFull", instance="db-3"))
        await shop.cycle()
        listed = await (await shop.client.get("/api/v1/signals/unmatched")).json()
        assert [s["name"] for s in listed["signals"]] == ["DiskAlmostFull"]
        metrics = await (await shop.client.get("/metrics")).text()
        assert 'stormwatch_signals_processed_total{outcome="unmatched"} 1.0' in metrics

    async def test_alerts_alertmanager_left_out_are_counted(self, shop: Shop) -> None:
        body = {**payload(alert(cluster="eu-1")), "truncatedAlerts": 3}
        with capture_logs() as logs:
            response = await shop.client.post("/api/v1/alertmanager", json=body)
        assert response.status == 200
        assert events(logs, "webhook.truncated") == [{"alerts": 1, "truncated": 3}]
        metrics = await (await shop.client.get("/metrics")).text()
        assert "stormwatch_webhook_truncated_alerts_total 3.0" in metrics

    async def test_database_down_answers_503(self, shop: Shop) -> None:
        await shop.services.pool.close()
        response = await shop.post_alerts(alert(cluster="eu-1"))
        assert response.status == 503
        ready = await shop.client.get("/readyz")
        assert ready.status == 503


class TestUnexpectedErrors:
    """Whatever goes wrong inside, the answer is JSON: 503 when the database is not usable
    (Alertmanager and scripts retry), 500 with the request id otherwise. A handler that raises
    stands behind the service's own edge middleware."""

    @pytest.mark.parametrize(
        ("raised", "status", "logged"),
        [
            pytest.param(
                asyncpg.ReadOnlySQLTransactionError("read-only"),
                503,
                ("database.unavailable", "warning"),
                id="on a standby",
            ),
            pytest.param(
                asyncpg.AdminShutdownError("shutting down"),
                503,
                ("database.unavailable", "warning"),
                id="server shutdown",
            ),
            pytest.param(
                asyncpg.UniqueViolationError("duplicate key"),
                500,
                ("request.failed", "error"),
                id="other SQL error",
            ),
            pytest.param(RuntimeError("a bug"), 500, ("request.failed", "error"), id="a bug"),
        ],
    )
    async def test_answer_is_json(
        self, raised: Exception, status: int, logged: tuple[str, str]
    ) -> None:
        async def failing(_request: web.Request) -> web.Response:
            raise raised

        app = web.Application(middlewares=[edge(lambda _request: None)])
        app.router.add_post("/api/v1/incidents/{incident_id}/resolve", failing)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            with capture_logs() as logs:
                response = await client.post("/api/v1/incidents/1/resolve")
            assert response.status == status
            assert response.content_type == "application/json"
            assert (await response.json())["error"]
            assert response.headers["X-Request-Id"]
        assert [(entry["event"], entry["log_level"]) for entry in logs] == [logged]

    async def test_oversized_body_is_a_413_naming_it(self, shop: Shop) -> None:
        response = await shop.client.post("/api/v1/alertmanager", data=b" " * (MAX_BODY_BYTES + 1))
        assert response.status == 413
        answer = await response.json()
        assert answer["field"] == "body"
        assert str(MAX_BODY_BYTES) in answer["error"]

    async def test_undecodable_body_is_a_400_naming_it(self, shop: Shop) -> None:
        response = await shop.client.post(
            "/api/v1/alertmanager",
            data=b"not gzip at all",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert (await response.json())["field"] == "body"


class TestIncidentApi:
    @pytest.mark.parametrize(
        ("path", "status", "field"),
        [
            pytest.param("/api/v1/incidents?state=burning", 400, "state", id="bad state filter"),
            pytest.param("/api/v1/incidents?limit=zero", 400, "limit", id="bad limit"),
            pytest.param("/api/v1/incidents/abc", 400, "id", id="id not a number"),
            pytest.param("/api/v1/incidents/999", 404, "id", id="no such incident"),
        ],
    )
    async def test_bad_requests_name_the_field(
        self, shop: Shop, path: str, status: int, field: str
    ) -> None:
        response = await shop.client.get(path)
        assert response.status == status
        assert (await response.json())["field"] == field

    async def test_action_body_is_validated(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [incident] = await shop.incidents()
        response = await shop.client.post(
            f"/api/v1/incidents/{incident['id']}/ack", json={"who": "x"}
        )
        assert response.status == 400
        assert (await response.json())["field"] == "who"

    async def test_manual_resolve_and_second_resolve(self, shop: Shop) -> None:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [incident] = await shop.incidents("open")
        path = f"/api/v1/incidents/{incident['id']}/resolve"
        first = await shop.client.post(path, json={"by": "sam", "reason": "pool resized"})
        assert (await first.json())["result"] == "resolved"
        second = await shop.client.post(path)
        assert (await second.json())["result"] == "already_resolved"
        assert await shop.incidents("open") == []


class TestAckLink:
    async def _page(self, shop: Shop) -> dict[str, Any]:
        await shop.post_alerts(alert(cluster="eu-1"))
        await shop.cycle()
        [page] = shop.pager.delivered("triggered")
        return page

    def _path(self, page: dict[str, Any]) -> str:
        return str(page["links"]["acknowledge"]).removeprefix("https://stormwatch.example")

    async def test_get_shows_confirmation_without_acknowledging(self, shop: Shop) -> None:
        page = await self._page(shop)
        response = await shop.client.get(self._path(page))
        assert response.status == 200
        html = await response.text()
        assert "Connection pool exhausted on eu-1" in html
        assert '<form method="post">' in html
        assert (await shop.incidents())[0]["state"] == "triggered"

    async def test_post_acknowledges_and_stops_escalation(self, shop: Shop) -> None:
        page = await self._page(shop)
        response = await shop.client.post(self._path(page), data={"by": "maria"})
        assert response.status == 200
        assert "Escalation stopped" in await response.text()
        [incident] = await shop.incidents()
        assert (incident["state"], incident["acknowledged_by"]) == ("acknowledged", "maria")
        await shop.advance(timedelta(minutes=10))
        assert shop.backup.delivered("triggered") == []
        again = await shop.client.post(self._path(page))
        assert "already acknowledged" in await again.text()

    async def test_expired_link_is_refused(self, shop: Shop) -> None:
        page = await self._page(shop)
        shop.clock.advance(timedelta(hours=13))
        response = await shop.client.post(self._path(page))
        assert response.status == 410
        assert (await shop.incidents())[0]["state"] == "triggered"

    async def test_link_from_before_a_reopen_acknowledges_nothing(self, shop: Shop) -> None:
        old = await self._page(shop)
        incident_id = old["incident"]["id"]
        await shop.post_alerts(alert(cluster="eu-1", status="resolved", ends_at=T0))
        await shop.cycle()
        await shop.post_alerts(alert(cluster="eu-1", starts_at=T0 + timedelta(minutes=2)))
        await shop.cycle()
        [new] = shop.pager.delivered("reopened")
        assert new["incident"]["id"] == incident_id

        shown = await shop.client.get(self._path(old))
        refused = await shop.client.post(self._path(old), data={"by": "maria"})
        assert (shown.status, refused.status) == (410, 410)
        assert "fired again" in await refused.text()
        assert (await shop.incident(incident_id))["state"] == "triggered"
        accepted = await shop.client.post(self._path(new), data={"by": "maria"})
        assert "Escalation stopped" in await accepted.text()
        assert (await shop.incident(incident_id))["state"] == "acknowledged"

    async def test_forged_link_is_refused(self, shop: Shop) -> None:
        await self._page(shop)
        forged = make_token(b"another key", 1, T0 + timedelta(hours=1))
        response = await shop.client.post(f"/ack/{forged}")
        assert response.status == 400
        assert (await shop.incidents())[0]["state"] == "triggered"


class TestErrorsAreJson:
    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            pytest.param("GET", "/api/v1/nothing-here", 404, id="unknown path"),
            pytest.param("GET", "/api/v1/alertmanager", 405, id="wrong method"),
        ],
    )
    async def test_framework_errors_answer_json(
        self, shop: Shop, method: str, path: str, status: int
    ) -> None:
        response = await shop.client.request(method, path)
        assert response.status == status
        assert response.content_type == "application/json"
        assert (await response.json())["error"]


class TestRequestId:
    async def test_log_lines_of_a_request_carry_its_id_and_the_answer_echoes_it(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(LogFormat.JSON, "info")
        body = payload(alert(cluster="eu-1"))
        body["version"] = "3"
        response = await shop.client.post(
            "/api/v1/alertmanager", json=body, headers={"X-Request-Id": "am-retry-42"}
        )
        assert response.status == 400
        assert response.headers["X-Request-Id"] == "am-retry-42"
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
        [rejected] = [line for line in lines if line["event"] == "webhook.rejected"]
        assert (rejected["request_id"], rejected["path"]) == ("am-retry-42", "/api/v1/alertmanager")
        later = await shop.client.get("/healthz")
        assert later.headers["X-Request-Id"] != "am-retry-42"  # generated when not given
