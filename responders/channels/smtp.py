"""The one SMTP connection the service hands mail to, shared by subscriber mail and page mail.

Relays limit and throttle connections rather than mails, so a sender keeps at most
``connections`` of them open and reuses each for the next mail. The server's answers become
delivery decisions here, once: a 5xx (a refused recipient, a rejected mail) is permanent, a 4xx,
a timeout or a broken connection is worth a retry.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path

import aiosmtplib

from responders.channels.protocol import DeliveryError, FailureReason


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how mail is handed over; the password is never logged or shown. ``ca_file``
    names the certificate authorities to trust instead of the system's (a private relay)."""

    host: str
    port: int
    sender: str
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ca_file: Path | None = None

    def __repr__(self) -> str:
        return f"SmtpServer(host={self.host!r}, port={self.port}, security={self.security})"

    @property
    def domain(self) -> str:
        """The sender address's domain, which the ids of the mails sent from it end in."""
        address = parseaddr(self.sender)[1]
        return address.rpartition("@")[2] or "localhost"


class SmtpSender:
    """Hands mails to one SMTP server over at most ``connections`` kept-open connections."""

    def __init__(self, server: SmtpServer, connections: int = 10) -> None:
        self.server = server
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[aiosmtplib.SMTP] = []
        self._tls = _tls_context(server)

    def __repr__(self) -> str:
        return f"SmtpSender({self.server!r})"

    async def send(self, mail: EmailMessage) -> None:
        """Hand ``mail`` over or raise :class:`DeliveryError`. A kept connection the server has
        closed meanwhile is replaced once."""
        async with self._slots:
            reused = self._idle.pop() if self._idle else None
            try:
                await self._send_on(reused, mail)
            except aiosmtplib.SMTPServerDisconnected:
                if reused is None:
                    raise DeliveryError(FailureReason.CONNECTION, retryable=True) from None
                try:
                    await self._send_on(None, mail)
                except aiosmtplib.SMTPServerDisconnected:
                    raise DeliveryError(FailureReason.CONNECTION, retryable=True) from None

    async def close(self) -> None:
        """Say goodbye on every kept connection (best effort: the server may be gone)."""
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def _send_on(self, client: aiosmtplib.SMTP | None, mail: EmailMessage) -> None:
        try:
            if client is None or not client.is_connected:
                client = await self._connect()
            await client.send_message(mail)
        except Exception as err:
            if client is not None:
                client.close()
            if isinstance(err, aiosmtplib.SMTPServerDisconnected):
                raise
            raise delivery_error(err) from None
        self._idle.append(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        server = self.server
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            use_tls=server.security is SmtpSecurity.TLS,
            start_tls=server.security is SmtpSecurity.STARTTLS,
            tls_context=self._tls,
            timeout=server.timeout,
        )
        await client.connect()
        if server.username and server.password:
            try:
                await client.login(server.username, server.password)
            except Exception:
                client.close()
                raise
        return client


def _tls_context(server: SmtpServer) -> ssl.SSLContext | None:
    """A context trusting ``ca_file`` (None: aiosmtplib's default, the system's authorities)."""
    if server.ca_file is None or server.security is SmtpSecurity.NONE:
        return None
    return ssl.create_default_context(cafile=str(server.ca_file))


def delivery_error(err: Exception) -> Exception:
    """The delivery decision for an SMTP failure (anything else passes through unchanged)."""
    if isinstance(err, aiosmtplib.SMTPTimeoutError):
        return DeliveryError(FailureReason.TIMEOUT, retryable=True)
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        later = any(400 <= refused.code < 500 for refused in err.recipients)
        reason = FailureReason.SERVER_ERROR if later else FailureReason.REJECTED
        return DeliveryError(reason, retryable=later, detail="recipient refused")
    if isinstance(err, aiosmtplib.SMTPResponseException):
        permanent = 500 <= err.code < 600
        reason = FailureReason.REJECTED if permanent else FailureReason.SERVER_ERROR
        return DeliveryError(reason, retryable=not permanent, detail=f"SMTP {err.code}")
    if isinstance(err, aiosmtplib.SMTPException | OSError):
        return DeliveryError(FailureReason.CONNECTION, retryable=True, detail=type(err).__name__)
    return err
