"""Everything the demo starts, on 127.0.0.1 and in its own temporary directory: the demo shop
with background shoppers, a page receiver, an SMTP sink, Prometheus when installed, and the
Stormwatch service itself on the embedded database. Stopped in reverse order on exit."""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from aiohttp import web

from detector.demo.scenery import write_rules
from detector.demo.shop_prometheus import ShopPrometheus
from detector.demo.sinks import MailSink, PageReceiver, free_port
from detector.demo_shop.shop import Shop
from detector.demo_shop.storefront import create_storefront
from detector.demo_shop.traffic import traffic_context
from detector.service.app import create_app
from detector.service.settings import Settings
from responders.channels.email import SmtpSecurity

SHOPPERS_PER_SECOND = 4.0


@dataclass
class World:
    """The running pieces the story drives and reads."""

    directory: Path
    shop: Shop
    shop_url: str
    service_url: str
    pages: PageReceiver
    mail: MailSink
    prometheus: ShopPrometheus | None


class DemoWorld:
    """``async with DemoWorld(...) as world``: start everything, then stop it all."""

    def __init__(self, with_prometheus: bool = True) -> None:
        self._with_prometheus = with_prometheus
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> World:
        stack = self._stack
        directory = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="stormwatch-demo-"))
        )
        mail = MailSink().start()
        stack.callback(mail.stop)
        pages = await PageReceiver().start()
        stack.push_async_callback(pages.stop)
        shop = Shop()
        shop_url = await self._serve(create_storefront(shop), with_traffic=True)
        prometheus = None
        if self._with_prometheus and ShopPrometheus.available():
            prometheus = ShopPrometheus(directory / "prometheus", shop_url).start()
            stack.callback(prometheus.stop)
        port = free_port()
        settings = Settings(
            data_dir=directory / "data",
            rules_dir=write_rules(directory / "rules", shop_url, pages.url),
            host="127.0.0.1",
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            run_engine=True,
            engine_process=False,
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            smtp_security=SmtpSecurity.NONE,
            smtp_from="status@demo-shop.invalid",
            prometheus_url=prometheus.url if prometheus else None,
            impact_interval=timedelta(seconds=5),
            probe_location="demo",
            status_page_name="Demo shop",
            log_level="error",
        )
        service_url = await self._serve(create_app(settings), port=port)
        return World(directory, shop, shop_url, service_url, pages, mail, prometheus)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _serve(
        self, app: web.Application, port: int | None = None, with_traffic: bool = False
    ) -> str:
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        if with_traffic:
            app.cleanup_ctx.append(traffic_context(url, SHOPPERS_PER_SECOND))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return url
