"""``POST /api/v1/alertmanager``: answer 2xx only once the alerts are committed.

Rejections stay cheap (Alertmanager resends a 4xx'd group every group_interval): parse, name the
field, keep a bounded copy of the body for inspection. Database trouble answers 503 so
Alertmanager retries with backoff.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from detector.domain.model import Source
from detector.intake.alertmanager import PayloadError, alertnames, log_entry, parse_payload
from detector.intake.batcher import DB_ERRORS
from detector.intake.replay_memo import digest_of
from detector.store import intake_log
from detector.web.context import SERVICES, Services
from detector.web.responses import check_bearer, error

log = structlog.get_logger(__name__)
_KEPT_BODY_BYTES = 64 * 1024


async def receive_alertmanager(request: web.Request) -> web.Response:
    """Validate, store durably (the commit notifies the engine), answer; a byte-identical resend
    of a body stored moments ago is answered at once (``ReplayMemo``)."""
    started = time.perf_counter()
    services = request.app[SERVICES]
    denied = check_bearer(request, services.settings.webhook_token)
    if denied is not None:
        services.metrics.webhooks.labels("unauthorized").inc()
        return denied
    body = await request.read()
    received_at = services.clock.now()
    digest = digest_of(body)
    alerts = services.replays.recall(digest, received_at)
    if alerts is not None:
        services.metrics.webhooks.labels("replayed").inc()
        services.metrics.signals_received.labels(Source.ALERTMANAGER, "duplicate").inc(alerts)
        return _accepted(services, alerts, started)
    try:
        payload = parse_payload(body)
    except PayloadError as err:
        return await _reject(services, body, err)
    alerts = len(payload["alerts"])
    if truncated := payload.get("truncatedAlerts", 0):
        # Alertmanager's max_alerts cut the group: those alerts (resolutions included) never
        # arrive here. Loud, since nothing else would show it.
        services.metrics.truncated_alerts.inc(truncated)
        log.warning("webhook.truncated", alerts=alerts, truncated=truncated)
    try:
        await services.batcher.submit(log_entry(body, received_at), alerts, alertnames(payload))
    except DB_ERRORS as err:
        services.metrics.webhooks.labels("unavailable").inc()
        log.warning(
            "webhook.unavailable",
            alerts=alerts,
            error=type(err).__name__,
            reason=str(err)[:200],
        )
        return error(503, "database unavailable, retry later")
    services.replays.remember(digest, payload, received_at)
    services.metrics.webhooks_accepted.inc()
    return _accepted(services, alerts, started)


def _accepted(services: Services, alerts: int, started: float) -> web.Response:
    services.metrics.alertmanager_alerts.inc(alerts)
    services.metrics.webhook_latency.observe(time.perf_counter() - started)
    # Written out rather than json_response: every webhook of a storm gets this answer, and
    # encoding it took a few percent of the intake's CPU.
    return web.Response(
        body=b'{"status":"accepted","alerts":%d}' % alerts,
        content_type="application/json",
        charset="utf-8",
    )


async def _reject(services: Services, body: bytes, err: PayloadError) -> web.Response:
    services.metrics.webhooks.labels("rejected").inc()
    services.metrics.signals_received.labels(Source.ALERTMANAGER, "rejected").inc()
    log.info("webhook.rejected", field=err.field, reason=err.errors[0]["reason"])
    try:
        async with services.pool.acquire() as connection:
            await intake_log.keep_rejected(
                connection,
                services.clock.now(),
                err.field,
                err.errors[0]["reason"],
                body[:_KEPT_BODY_BYTES].decode("utf-8", errors="replace"),
                services.settings.rejected_keep,
            )
    except DB_ERRORS:
        log.warning("webhook.rejected_body_not_kept")
    return error(400, "invalid Alertmanager payload", field=err.field, errors=err.errors)
