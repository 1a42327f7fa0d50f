"""A TCP proxy in front of the test PostgreSQL's socket, to stage a database in trouble: one
that stops answering without closing its connections (``flowing``), or one that goes away and
comes back (``cut`` and ``restore``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit


class PostgresProxy:
    """Listens on 127.0.0.1 and passes every connection on to PostgreSQL's Unix socket."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query)["host"][0]
        self._socket_path = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}"
        self._user, self._path = parts.username, parts.path
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """The database's URL through this proxy."""
        return f"postgresql://{self._user}@127.0.0.1:{self.port}{self._path}"

    async def start(self) -> PostgresProxy:
        """Listen (again, on the same port after ``cut``)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def cut(self) -> None:
        """The database goes away: open connections drop, new ones are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        """The database is back on the same address."""
        await self.start()

    async def stop(self) -> None:
        self.flowing.set()
        await self.cut()
        for task in self._tasks:
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(self._socket_path)
        self._writers |= {writer, upstream_writer}
        pipes = ((reader, upstream_writer, self._close), (upstream_reader, writer, self._closed))
        for source, sink, close in pipes:
            task = asyncio.create_task(self._pipe(source, sink, close))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        close: Callable[[asyncio.StreamWriter], Awaitable[None]],
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(data)
                await sink.drain()
        await close(sink)

    async def _close(self, sink: asyncio.StreamWriter) -> None:
        self._writers.discard(sink)
        sink.close()

    async def _closed(self, client: asyncio.StreamWriter) -> None:
        """PostgreSQL closed a connection: close it towards the client too."""
        await self._close(client)
