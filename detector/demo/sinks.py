"""Where the demo's pages and mail land: a local page receiver (what a pager integration would
be) and a local SMTP sink (the customers' inboxes), both on 127.0.0.1, keeping what arrives."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller


def free_port() -> int:
    """A loopback port nobody listens on (until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class PageReceiver:
    """Accepts webhook pages on ``POST /page`` and keeps their JSON bodies."""

    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []
        self.url = ""
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> PageReceiver:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/page", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/page"
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def find(self, event: str) -> dict[str, Any] | None:
        """The first page received for ``event`` (triggered, acknowledged, resolved)."""
        return next((page for page in self.pages if page.get("event") == event), None)

    async def _receive(self, request: web.Request) -> web.Response:
        self.pages.append(await request.json())
        return web.json_response({"status": "ok"})


class MailSink:
    """An SMTP server that accepts every mail and keeps it (aiosmtpd, in its own thread)."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=free_port())

    @property
    def port(self) -> int:
        """Where it listens."""
        port: int = self._controller.port
        return port

    def start(self) -> MailSink:
        """Start accepting mail."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop the server."""
        self._controller.stop()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        """Keep the mail."""
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if isinstance(parsed, EmailMessage):
            self.mails.append(parsed)
        return "250 OK"

    def texts(self) -> list[str]:
        """Each mail's plain-text body."""
        bodies = []
        for mail in self.mails:
            part = mail.get_body(("plain",))
            bodies.append(part.get_content() if isinstance(part, EmailMessage) else "")
        return bodies
