"""Mail to subscribers, handed to the service's SMTP sender (``smtp``): public updates and the
double opt-in mail.

Every mail carries an unsubscribe link in its text and the RFC 8058 one-click headers
(``List-Unsubscribe`` with an HTTPS URL, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``),
so a mail client's unsubscribe button works without opening a page.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from responders.channels.protocol import DeliveryError, FailureReason
from responders.channels.smtp import SmtpSecurity, SmtpSender, SmtpServer
from responders.messages import (
    Message,
    MessageKind,
    Recipient,
    SubscriberNoticeMessage,
    SubscriptionConfirmMessage,
)

__all__ = ["EmailChannel", "SmtpSecurity", "SmtpServer", "compose"]
"""``SmtpSecurity`` and ``SmtpServer`` live in ``smtp``; they are named here as well for the
callers that knew them from this module."""


class EmailChannel:
    """Sends subscriber mail through the service's SMTP sender (or, given a server, a sender of
    its own with ``connections`` kept-open connections)."""

    kinds = frozenset({MessageKind.SUBSCRIBER_NOTICE, MessageKind.SUBSCRIPTION_CONFIRM})

    def __init__(self, name: str, smtp: SmtpSender | SmtpServer, connections: int = 10) -> None:
        self.name = name
        self._smtp = smtp if isinstance(smtp, SmtpSender) else SmtpSender(smtp, connections)

    async def send(self, message: Message, idempotency_key: str) -> None:
        """Hand the mail to the SMTP server; 4xx answers are retried, 5xx are not."""
        await self._smtp.send(compose(message, self._smtp.server.sender, idempotency_key))


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
