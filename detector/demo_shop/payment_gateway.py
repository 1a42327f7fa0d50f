"""The sandbox payment provider the shop charges cards through.

Probes and real customers reach the same provider, as a shop's test-mode keys reach the real
one: a synthetic charge is never captured, but an outage fails it like any other. Outcomes are
decided by the test card numbers, as on common sandboxes.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from enum import StrEnum

PROVIDER = "stripe"
SERVER_ADDRESS = "api.stripe.com"
DECLINED_CARD = "4000000000000002"
CALL_SECONDS = 0.01


class ChargeOutcome(StrEnum):
    """How a charge ended: the ``outcome`` label of ``payment_attempts_total``."""

    AUTHORIZED = "authorized"
    DECLINED = "declined"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Charge:
    """The provider's answer: outcome, the HTTP status it answered with, and a payment id."""

    outcome: ChargeOutcome
    status: int
    payment_id: str | None = None


class PaymentGateway:
    """Charges cards; ``down`` makes every call fail with a 503, as a provider outage does."""

    def __init__(self) -> None:
        self.down = False

    async def charge(self, card_number: str, amount_cents: int) -> Charge:
        """One call to the provider."""
        await asyncio.sleep(CALL_SECONDS)
        if self.down:
            return Charge(ChargeOutcome.ERROR, 503)
        if card_number.replace(" ", "") == DECLINED_CARD or amount_cents <= 0:
            return Charge(ChargeOutcome.DECLINED, 402)
        return Charge(ChargeOutcome.AUTHORIZED, 200, f"pay-{uuid.uuid4().hex[:16]}")
