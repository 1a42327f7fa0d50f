"""Wiring of the subscriber delivery stage: the SMTP sender and the webhook session it sends
through, and the status page address its links point at."""

from __future__ import annotations

import aiohttp

from detector.engine.subscriber_delivery import SubscriberDeliveryStage, SubscriberLinks
from detector.service.settings import Settings
from detector.store.subscribers import SubscriberKind
from responders.channels.email import EmailChannel
from responders.channels.protocol import Channel
from responders.channels.smtp import SmtpSender
from responders.channels.subscriber_webhook import SubscriberWebhookChannel


def subscriber_stage(
    settings: Settings, session: aiohttp.ClientSession, smtp: SmtpSender
) -> SubscriberDeliveryStage:
    """The stage that mails and posts to subscribers, mail through the service's SMTP sender."""
    channels: dict[SubscriberKind, Channel] = {
        SubscriberKind.EMAIL: EmailChannel("subscribers-email", smtp),
        SubscriberKind.WEBHOOK: SubscriberWebhookChannel("subscribers-webhook", session),
    }
    return SubscriberDeliveryStage(channels, SubscriberLinks(settings.status_page_base))
