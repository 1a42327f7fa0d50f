"""The impact stage as the service runs it: against the configured Prometheus, or none."""

from __future__ import annotations

import aiohttp

from detector.engine.impact_stage import ImpactStage
from detector.engine.prometheus_api import PrometheusApi
from detector.service.settings import Settings


def impact_stage(settings: Settings, session: aiohttp.ClientSession) -> ImpactStage:
    """Measure impact through ``STORMWATCH_PROMETHEUS_URL`` (unset: every impact is unknown)."""
    url = settings.prometheus_url
    api = PrometheusApi(session, url) if url else None
    return ImpactStage(api, settings.impact_interval)
