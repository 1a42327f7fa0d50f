"""Wiring of the subscriber delivery stage: the SMTP server and the webhook session it sends
through, and the status page address its links point at."""

from __future__ import annotations

import aiohttp

from detector.engine.subscriber_delivery import SubscriberDeliveryStage, SubscriberLinks
from detector.service.settings import Settings
from detector.store.subscribers import SubscriberKind
from responders.channels.email import EmailChannel, SmtpServer
from responders.channels.protocol import Channel
from responders.channels.subscriber_webhook import SubscriberWebhookChannel


def subscriber_stage(settings: Settings, session: aiohttp.ClientSession) -> SubscriberDeliveryStage:
    """The stage that mails and posts to subscribers, through the configured SMTP server."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    server = SmtpServer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_from,
        settings.smtp_security,
        settings.smtp_username,
        password,
    )
    channels: dict[SubscriberKind, Channel] = {
        SubscriberKind.EMAIL: EmailChannel("subscribers-email", server),
        SubscriberKind.WEBHOOK: SubscriberWebhookChannel("subscribers-webhook", session),
    }
    return SubscriberDeliveryStage(channels, SubscriberLinks(settings.status_page_base))
