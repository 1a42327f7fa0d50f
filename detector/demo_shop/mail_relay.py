"""The shop's outgoing mail relay: order confirmations wait in its queue until it sends them.

The mail-stuck fault stops sending, so messages age in the active queue, which the Postfix
exporter's showq histogram (``exporters.py``) shows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class QueuedMail:
    """One message waiting in the relay."""

    to: str
    subject: str
    queued_at: float


class MailRelay:
    """A queue of messages that ``run`` delivers every ``interval`` seconds unless stuck."""

    def __init__(self, interval: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.stuck = False
        self.sent = 0
        self._clock = clock
        self._queue: list[QueuedMail] = []

    def enqueue(self, to: str, subject: str) -> None:
        """Queue a message for sending."""
        self._queue.append(QueuedMail(to, subject, self._clock()))

    def ages(self) -> dict[str, list[float]]:
        """Ages in seconds of the messages waiting, by Postfix queue name."""
        now = self._clock()
        return {ACTIVE: [now - mail.queued_at for mail in self._queue]} if self._queue else {}

    def deliver(self) -> int:
        """Send what is queued (nothing while stuck); returns how many went out."""
        if self.stuck:
            return 0
        count, self._queue = len(self._queue), []
        self.sent += count
        return count

    async def run(self) -> None:
        """Deliver every ``interval`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.deliver()
