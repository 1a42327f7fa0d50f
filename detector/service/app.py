"""create_app(settings): the one place that constructs things and wires them together.

Start-up order: database (embedded if no URL) → migrations → HTTP client → rules and channels →
signing key → intake batcher → engine → Alertmanager reconciler (when ALERTMANAGER_URL is set).
Shutdown runs the reverse: the reconciler and then the engine finish their run, in-flight commits
drain, the pool closes, the embedded database stops.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from pydantic import SecretStr

from detector.domain.model import Signal
from detector.engine.bundling import Bundling
from detector.engine.cycle import Engine
from detector.engine.delivery import Deliverer
from detector.intake.batcher import IntakeBatcher
from detector.intake.replay_memo import ReplayMemo
from detector.probes.prober import Prober
from detector.probes.runner import JourneyRunner
from detector.probes.timings import timed_ssl_context
from detector.reconcile.alertmanager_api import AlertmanagerClient, AlertmanagerPeers
from detector.reconcile.reconciler import Reconciler
from detector.ruleset.live import LiveRules
from detector.ruleset.reload import RulesReloader
from detector.ruleset.rules import RuleSet
from detector.service.background import BackgroundLoops
from detector.service.clock import Clock, SystemClock
from detector.service.database import connection_pool, database_server, named
from detector.service.engine_process import EngineProcess
from detector.service.impact_wiring import external_stages
from detector.service.integrations import build_channels, channel_registry
from detector.service.mail import page_mail_channel, smtp_sender
from detector.service.metrics import Metrics
from detector.service.settings import Settings
from detector.service.subscriber_channels import subscriber_stage
from detector.store.connection import UNAVAILABLE
from detector.store.secrets import signing_key
from detector.store.wakeup import STATUSPAGE_CHANNEL, wake_on, wake_on_intake
from detector.web import (
    ack_page,
    calendar_feeds,
    components_api,
    incidents_api,
    notices_api,
    oncall_api,
    ops,
    probes_api,
    report_api,
    rules_api,
    status,
    subscribers_api,
    webhook,
)
from detector.web.ack_links import LinkBuilder
from detector.web.context import METRICS, SERVICES, Services
from detector.web.rate_limit import RateLimiter
from detector.web.responses import WEBHOOK_PATH, edge
from detector.web.status_snapshot import StatusSnapshot
from detector.web.status_state import page_info
from responders.channels.registry import ChannelRegistry
from responders.channels.smtp import SmtpSender

log = structlog.get_logger(__name__)
MAX_BODY_BYTES = 32 * 1024 * 1024
RECONCILER = web.AppKey("reconciler", Reconciler)
"""The app's reconciler, present only when ``alertmanager_url`` is set (tests call it directly)."""


SUBSCRIBE_WINDOW = timedelta(minutes=10)


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    *,
    engine_process: bool = False,
) -> web.Application:
    """Build the aiohttp application; resources start in its cleanup context.

    With ``engine_process`` (what ``stormwatch serve`` uses) the engine runs in a child process,
    so webhook intake never waits behind engine work for the CPU.
    """
    app = web.Application(
        middlewares=[edge(lambda request: request.app[SERVICES].settings.api_token)],
        client_max_size=MAX_BODY_BYTES,
    )
    app[METRICS] = metrics or Metrics()
    app.add_routes([web.post(WEBHOOK_PATH, webhook.receive_alertmanager)])
    app.add_routes(incidents_api.routes() + rules_api.routes() + ack_page.routes() + ops.routes())
    app.add_routes(status.routes() + components_api.routes())
    app.add_routes(probes_api.routes() + report_api.routes())
    app.add_routes(notices_api.routes() + subscribers_api.routes())
    app.add_routes(oncall_api.routes() + calendar_feeds.routes())
    app.on_response_prepare.append(ack_page.protect)
    clock = clock or SystemClock()
    limit = RateLimiter(settings.subscribe_rate_limit, SUBSCRIBE_WINDOW, clock.now)
    app[subscribers_api.LIMITER] = limit
    app.cleanup_ctx.append(_lifecycle(settings, clock, engine_process))
    return app


def _lifecycle(
    settings: Settings, clock: Clock, engine_process: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context: everything starts before the first request and stops after the last."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            server = await stack.enter_async_context(database_server(settings))
            engine_here = settings.run_engine and not engine_process
            url = named(server, "stormwatch" if engine_here else "stormwatch-web")
            services = await _start_services(stack, url, app[METRICS], settings, clock)
            app[SERVICES] = services
            reconciler = child = None
            if settings.run_engine and engine_process:
                child = await stack.enter_async_context(
                    EngineProcess(settings.model_copy(update={"database_url": SecretStr(server)}))
                )
                services.reloader.forward_to(child.reload)
            else:
                reconciler = _reconciler_for(services)
            if reconciler is not None:
                app[RECONCILER] = reconciler
            if child is not None or engine_here:
                app[ops.ENGINE] = child or services.engine
            loops = _start_loops(services, url, reconciler, engine_here=engine_here)
            await _serve_status_page(loops, services, url)
            sighup = _reload_on_sighup(services.reloader)
            log.info(
                "service.started", url=settings.base_url, rules=len(services.rules.current.rules)
            )
            yield
            if sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await loops.stop_all()
            if child is not None:
                await child.stop()
            await services.batcher.drain()
            log.info("service.stopped")

    return run


@asynccontextmanager
async def engine_services(
    settings: Settings, clock: Clock, start_with: RuleSet | None = None
) -> AsyncIterator[Services]:
    """Everything the engine needs, running, without the HTTP server (the engine process);
    ``start_with`` rules instead of reading the directory first (see ``LiveRules``)."""
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(database_server(settings))
        url = named(server, "stormwatch-engine")
        services = await _start_services(stack, url, Metrics(), settings, clock, start_with)
        loops = _start_loops(services, url, _reconciler_for(services), engine_here=True)
        try:
            yield services
        finally:
            await loops.stop_all()


def _reconciler_for(services: Services) -> Reconciler | None:
    """The reconciler where the engine runs; a rules reload makes it run at once."""
    live = services.rules
    reconciler = build_reconciler(
        services.settings,
        services.pool,
        services.session,
        services.clock,
        services.metrics,
        services.engine.wake,
        lambda signal: bool(live.current.route(signal)),
    )
    if reconciler is not None:
        services.reloader.on_swap(reconciler.run_soon)
    return reconciler


async def _start_services(
    stack: AsyncExitStack,
    url: str,
    metrics: Metrics,
    settings: Settings,
    clock: Clock,
    start_with: RuleSet | None = None,
) -> Services:
    """Construct everything requests and loops share, in dependency order."""
    pool = await stack.enter_async_context(connection_pool(url, settings.db_pool_size))
    session = await stack.enter_async_context(aiohttp.ClientSession())
    smtp = await stack.enter_async_context(smtp_sender(settings))
    registry = _registry(session, smtp, clock)
    rules = LiveRules(
        settings.rules_dir, lambda r: build_channels(r, registry), clock.now, start_with
    )
    key = await signing_key(pool, settings.signing_key)
    deliverer = _deliverer(settings, key, clock)
    page = page_info(
        settings.status_page_name, settings.status_page_base, settings.status_page_time_zone
    )
    services = Services(
        settings=settings,
        pool=pool,
        session=session,
        rules=rules,
        reloader=RulesReloader(rules, settings.rules_dir, metrics),
        metrics=metrics,
        clock=clock,
        batcher=IntakeBatcher(pool, clock.now, settings.intake_timeout, metrics.intake_committed),
        replays=ReplayMemo(settings.replay_window),
        engine=Engine(
            pool,
            lambda: rules.routes,
            deliverer,
            clock,
            metrics,
            settings.engine_interval,
            retention=settings.retention,
            batch_window=settings.engine_batch_window,
            related_window=settings.related_window,
            page=page,
            storm_pace=settings.engine_storm_pace,
            extra_stages=[
                subscriber_stage(settings, session, smtp),
                *external_stages(settings, session),
            ],
        ),
        signing_key=key,
        status_page=StatusSnapshot(
            pool,
            lambda: rules.current,
            page,
            clock,
            settings.status_page_refresh,
        ),
    )
    services.reloader.on_swap(services.replays.forget_all)
    services.reloader.on_swap(services.engine.rules_changed)
    return services


def _registry(session: aiohttp.ClientSession, smtp: SmtpSender, clock: Clock) -> ChannelRegistry:
    """Every channel integration, page mail sharing the service's one SMTP sender."""
    return channel_registry(
        session,
        clock.now,
        email=lambda name, target: page_mail_channel(name, target, smtp, clock.now),
    )


def _deliverer(settings: Settings, key: bytes, clock: Clock) -> Deliverer:
    """Page delivery's links, backoff jitter and storm bundling."""
    return Deliverer(
        links=LinkBuilder(settings.base_url, key, settings.ack_link_ttl, clock),
        rng=random.Random(),  # noqa: S311 - jitter, not security
        bundling=Bundling(settings.page_bundle_limit, settings.page_bundle_window),
    )


def _start_loops(
    services: Services, url: str, reconciler: Reconciler | None, *, engine_here: bool
) -> BackgroundLoops:
    """The rule watcher everywhere; engine, its wake-up listener and the reconciler where the
    engine runs."""
    loops = BackgroundLoops()
    settings = services.settings
    if settings.rules_watch_interval > timedelta(0):
        loops.start(services.reloader.watch(settings.rules_watch_interval))
    if engine_here:
        loops.start(wake_on_intake(url, services.engine.signals_stored))
        loops.start(services.engine.run(), services.engine.stop)
        if reconciler is not None:
            loops.start(reconciler.run(), reconciler.stop)
        if settings.run_probes:
            prober = build_prober(services)
            loops.start(prober.run(), prober.stop)
    return loops


async def _serve_status_page(loops: BackgroundLoops, services: Services, url: str) -> None:
    """Build the public documents before the first request, then keep them current: on every
    public change any replica commits, on every rules swap, and on the refresh timer."""
    snapshot = services.status_page
    try:
        await snapshot.rebuild()
    except UNAVAILABLE as err:  # the loop retries; until then the page answers 503
        log.warning("statuspage.rebuild_failed", error=type(err).__name__)
    services.reloader.on_swap(snapshot.wake)
    loops.start(wake_on(url, STATUSPAGE_CHANNEL, snapshot.wake))
    loops.start(snapshot.run(), snapshot.stop)


def build_prober(services: Services) -> Prober:
    """The journey loop for this replica's location, over the live rules' journeys."""
    settings = services.settings
    cafile = str(settings.probe_ca_file) if settings.probe_ca_file else None
    runner = JourneyRunner(settings.probe_location, timed_ssl_context(cafile))
    return Prober(
        services.pool,
        lambda: services.rules.current.journeys,
        runner,
        services.clock,
        services.metrics,
        location=settings.probe_location,
        owner=f"{socket.gethostname()}:{os.getpid()}",
        concurrency=settings.probe_concurrency,
    )


def _reload_on_sighup(reloader: RulesReloader) -> bool:
    """``kill -HUP`` reloads the rules, as for Prometheus and Alertmanager (main thread only)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.reload, "sighup")
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def build_reconciler(
    settings: Settings,
    pool: asyncpg.Pool,
    session: aiohttp.ClientSession,
    clock: Clock,
    metrics: Metrics,
    wake: Callable[[], None],
    routed: Callable[[Signal], bool],
) -> Reconciler | None:
    """The Alertmanager reconciler, or None when no Alertmanager URL is configured;
    ``routed`` tells whether a rule routes a signal now (for adopting stored strays)."""
    if not settings.alertmanager_urls:  # unset, or set to empty
        return None
    token = settings.alertmanager_token
    peers = [AlertmanagerClient(session, url, token) for url in settings.alertmanager_urls]
    return Reconciler(
        pool,
        AlertmanagerPeers(peers),
        clock,
        metrics,
        interval=settings.reconcile_interval,
        grace=settings.reconcile_grace,
        wake=wake,
        routed=routed,
    )
