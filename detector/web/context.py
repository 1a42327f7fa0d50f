"""The shared resources handlers reach through ``request.app[SERVICES]``."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from detector.engine.cycle import Engine
from detector.intake.batcher import IntakeBatcher
from detector.intake.replay_memo import ReplayMemo
from detector.ruleset.live import LiveRules
from detector.ruleset.reload import RulesReloader
from detector.service.clock import Clock
from detector.service.metrics import Metrics
from detector.service.settings import Settings
from detector.store.connection import Pool
from detector.web.status_snapshot import StatusSnapshot


@dataclass(frozen=True, slots=True)
class Services:
    """Everything built at start-up that requests need."""

    settings: Settings
    pool: Pool
    session: aiohttp.ClientSession
    rules: LiveRules
    reloader: RulesReloader
    metrics: Metrics
    clock: Clock
    batcher: IntakeBatcher
    replays: ReplayMemo
    engine: Engine
    signing_key: bytes
    status_page: StatusSnapshot


SERVICES = web.AppKey("services", Services)
METRICS = web.AppKey("metrics", Metrics)
