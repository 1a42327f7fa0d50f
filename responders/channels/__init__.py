"""Delivery channels: the :class:`~responders.channels.protocol.Channel` protocol, a registry
that builds each channel from its spec type, and one module per integration.

Channels never retry; they report success or raise ``DeliveryError`` saying whether a retry
could help. The outbox owns retries, backoff and dead-lettering.
"""
