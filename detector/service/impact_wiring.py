"""The impact and dead-man stages as the service runs them: against the configured Prometheus
and checker, or none."""

from __future__ import annotations

import aiohttp

from detector.engine.deadman import DeadmanStage
from detector.engine.impact_stage import ImpactStage
from detector.engine.prometheus_api import PrometheusApi
from detector.service.settings import Settings


def impact_stage(settings: Settings, session: aiohttp.ClientSession) -> ImpactStage:
    """Measure impact through ``STORMWATCH_PROMETHEUS_URL`` (unset: every impact is unknown)."""
    url = settings.prometheus_url
    api = PrometheusApi(session, url) if url else None
    return ImpactStage(api, settings.impact_interval)


def external_stages(
    settings: Settings, session: aiohttp.ClientSession
) -> list[ImpactStage | DeadmanStage]:
    """The stages that reach outside: impact against Prometheus, and the dead-man ping to
    ``STORMWATCH_DEADMAN_URL`` every ``DEADMAN_INTERVAL`` (when set)."""
    url = settings.deadman_url
    deadman = [] if url is None else [DeadmanStage(session, url, settings.deadman_interval)]
    return [impact_stage(settings, session), *deadman]
