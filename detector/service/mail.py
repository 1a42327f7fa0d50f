"""The service's one SMTP sender, and the page-mail channels built on it.

Subscriber mail and page mail share the sender, so the relay sees one pool of connections from
each replica whatever the mix of mail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from detector.ruleset.channel_specs import EmailTarget
from detector.service.settings import Settings
from responders.channels.page_mail import PageMailChannel
from responders.channels.protocol import Channel
from responders.channels.smtp import SmtpSender, SmtpServer


@asynccontextmanager
async def smtp_sender(settings: Settings) -> AsyncIterator[SmtpSender]:
    """The sender for ``STORMWATCH_SMTP_*``, its kept connections closed on the way out."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    server = SmtpServer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_from,
        settings.smtp_security,
        settings.smtp_username,
        password,
        ca_file=settings.smtp_ca_file,
    )
    sender = SmtpSender(server)
    try:
        yield sender
    finally:
        await sender.close()


def page_mail_channel(
    name: str,
    target: EmailTarget,
    sender: SmtpSender,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Channel:
    """The channel mailing pages to ``target.to``: a shared mailbox (``name`` is the channel's)
    or a person's contact method (``name`` is its ``person:<id>:<index>`` key)."""
    return PageMailChannel(name, target.to, sender, now)
