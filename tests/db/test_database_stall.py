"""A database that stops answering without closing its connections (a frozen VM, a partition):
the webhook and readiness answer 503 in bounded time instead of hanging."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector.intake import batcher
from detector.service.app import create_app
from tests.conftest import alert, payload, settings_for
from tests.fakes import FakeClock


class StallingProxy:
    """TCP in front of PostgreSQL's socket that can hold every byte back, then let it through."""

    def __init__(self, socket_path: str) -> None:
        self._socket_path = socket_path
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.flowing.set()
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(self._socket_path)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.close()


@pytest.fixture
async def proxied_url(
    database_url: str, pool: asyncpg.Pool
) -> AsyncIterator[tuple[str, StallingProxy]]:
    """The test database reached through a StallingProxy (``pool`` has migrated it)."""
    parts = urlsplit(database_url)
    socket_dir = parse_qs(parts.query)["host"][0]
    proxy = StallingProxy(f"{socket_dir}/.s.PGSQL.{parts.port or 5432}")
    port = await proxy.start()
    yield f"postgresql://{parts.username}@127.0.0.1:{port}{parts.path}", proxy
    await proxy.stop()


async def test_stalled_database_answers_503_in_bounded_time(
    proxied_url: tuple[str, StallingProxy], rules_dir: Path
) -> None:
    url, proxy = proxied_url
    app = create_app(settings_for(url, rules_dir), clock=FakeClock())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        webhook = payload(alert(cluster="eu-1"))
        assert (await client.post("/api/v1/alertmanager", json=webhook)).status == 200
        proxy.flowing.clear()
        stalled = await asyncio.wait_for(
            client.post("/api/v1/alertmanager", json=payload(alert(cluster="eu-2"))),
            batcher.ANSWER_WITHIN_S + 5,
        )
        ready = await asyncio.wait_for(client.get("/readyz"), 5)
        assert (stalled.status, ready.status) == (503, 503)
        assert (await stalled.json())["error"].startswith("database unavailable")
        proxy.flowing.set()
        assert (await client.post("/api/v1/alertmanager", json=webhook)).status == 200
    finally:
        proxy.flowing.set()
        await client.close()
