"""Mail to subscribers over SMTP (aiosmtplib): public updates and the double opt-in mail.

Every mail carries an unsubscribe link in its text and the RFC 8058 one-click headers
(``List-Unsubscribe`` with an HTTPS URL, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``),
so a mail client's unsubscribe button works without opening a page.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum

import aiosmtplib

from responders.channels.protocol import DeliveryError, FailureReason
from responders.messages import (
    Message,
    MessageKind,
    Recipient,
    SubscriberNoticeMessage,
    SubscriptionConfirmMessage,
)


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how mail is handed over; the password is never logged or shown."""

    host: str
    port: int
    sender: str
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"SmtpServer(host={self.host!r}, port={self.port}, security={self.security})"


class EmailChannel:
    """Sends subscriber mail through one SMTP server over at most ``connections`` connections,
    each kept open for the next mail (relays limit and throttle connections, not mails)."""

    kinds = frozenset({MessageKind.SUBSCRIBER_NOTICE, MessageKind.SUBSCRIPTION_CONFIRM})

    def __init__(self, name: str, server: SmtpServer, connections: int = 10) -> None:
        self.name = name
        self._server = server
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, message: Message, idempotency_key: str) -> None:
        """Hand the mail to the SMTP server; 4xx answers are retried, 5xx are not. A kept
        connection the server has closed meanwhile is replaced once."""
        mail = compose(message, self._server.sender, idempotency_key)
        async with self._slots:
            reused = self._idle.pop() if self._idle else None
            try:
                await self._send_on(reused, mail)
            except aiosmtplib.SMTPServerDisconnected:
                if reused is None:
                    raise DeliveryError(FailureReason.CONNECTION, retryable=True) from None
                await self._send_on(None, mail)

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
            raise _delivery_error(err) from None
        self._idle.append(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        server = self._server
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            use_tls=server.security is SmtpSecurity.TLS,
            start_tls=server.security is SmtpSecurity.STARTTLS,
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


def _delivery_error(err: Exception) -> Exception:
    """The delivery decision for an SMTP failure (anything else passes through)."""
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


def compose(message: Message, sender: str, idempotency_key: str) -> EmailMessage:
    """The mail for a subscriber message, with the one-click unsubscribe headers."""
    if isinstance(message, SubscriberNoticeMessage):
        subject, text = message.subject, message.text
    elif isinstance(message, SubscriptionConfirmMessage):
        subject = f"Confirm your subscription to {message.page_name} status updates"
        text = (
            f"Someone asked to receive status updates from {message.page_name} at this address.\n"
            f"To start receiving them, confirm here:\n{message.recipient.confirm_link}\n\n"
            "If this was not you, ignore this mail: nothing will be sent."
        )
    else:
        raise DeliveryError(FailureReason.UNSUPPORTED_KIND, retryable=False, detail=message.kind)
    return _mail(message.recipient, sender, subject, text, idempotency_key)


def _mail(recipient: Recipient, sender: str, subject: str, text: str, key: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = recipient.address
    mail["Subject"] = subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(idstring=key.replace(":", "."))
    mail["List-Unsubscribe"] = f"<{recipient.unsubscribe_link}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(f"{text}\n\n--\nUnsubscribe: {recipient.unsubscribe_link}\n")
    return mail
