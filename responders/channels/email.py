"""Mail to subscribers over SMTP (aiosmtplib): public updates and the double opt-in mail.

Every mail carries an unsubscribe link in its text and the RFC 8058 one-click headers
(``List-Unsubscribe`` with an HTTPS URL, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``),
so a mail client's unsubscribe button works without opening a page.
"""

from __future__ import annotations

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
    """Sends subscriber mail through one SMTP server."""

    kinds = frozenset({MessageKind.SUBSCRIBER_NOTICE, MessageKind.SUBSCRIPTION_CONFIRM})

    def __init__(self, name: str, server: SmtpServer) -> None:
        self.name = name
        self._server = server

    async def send(self, message: Message, idempotency_key: str) -> None:
        """Hand the mail to the SMTP server; 4xx answers are retried, 5xx are not."""
        mail = compose(message, self._server.sender, idempotency_key)
        server = self._server
        try:
            await aiosmtplib.send(
                mail,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.security is SmtpSecurity.TLS,
                start_tls=server.security is SmtpSecurity.STARTTLS,
                timeout=server.timeout,
            )
        except aiosmtplib.SMTPTimeoutError:
            raise DeliveryError(FailureReason.TIMEOUT, retryable=True) from None
        except aiosmtplib.SMTPRecipientsRefused:
            raise DeliveryError(
                FailureReason.REJECTED, retryable=False, detail="recipient"
            ) from None
        except aiosmtplib.SMTPResponseException as err:
            permanent = 500 <= err.code < 600
            reason = FailureReason.REJECTED if permanent else FailureReason.SERVER_ERROR
            raise DeliveryError(
                reason, retryable=not permanent, detail=f"SMTP {err.code}"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as err:
            raise DeliveryError(
                FailureReason.CONNECTION, retryable=True, detail=type(err).__name__
            ) from None


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
