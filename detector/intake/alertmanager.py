"""Alertmanager webhook payloads (version 4, Alertmanager 0.25 on) turned into Signals.

Lenient where Alertmanager versions differ (unknown fields are ignored, optional ones default),
strict on what identity and state depend on, so a bad payload is rejected with the field named.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from detector.domain.fieldpath import field_path
from detector.domain.model import AlertStatus, Signal, Source

_ZERO_YEAR = 1
_NUL = b"\\u0000"  # how JSON writes the one character PostgreSQL cannot store in text


UtcRange = Annotated[
    AwareDatetime,
    Field(ge=datetime(1, 1, 1, tzinfo=UTC), le=datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)),
]
"""A time that exists in UTC: an offset can push year 1 or 9999 past the range Python (and the
engine after it) can convert. Checked while parsing, at no measurable cost."""


class WebhookAlert(TypedDict):
    """One alert of a notification."""

    status: AlertStatus
    labels: Annotated[dict[str, str], Field(min_length=1)]
    annotations: NotRequired[dict[str, str]]
    startsAt: UtcRange
    endsAt: NotRequired[UtcRange | None]
    generatorURL: NotRequired[str]
    fingerprint: NotRequired[Annotated[str, Field(pattern=r"^[0-9a-fA-F]*$", max_length=64)]]


class WebhookPayload(TypedDict):
    """The notification Alertmanager POSTs for one aggregation group.

    Typed dicts rather than models: the engine reads every accepted body a second time, and
    plain dicts validate markedly faster. Unknown fields are ignored (Alertmanager versions
    differ); the defaults of optional ones are applied in ``to_signals``.
    """

    version: Literal["4"]
    status: AlertStatus
    receiver: NotRequired[str]
    groupKey: NotRequired[str]
    alerts: list[WebhookAlert]
    truncatedAlerts: NotRequired[int]


class LoggedRequest(TypedDict):
    """One accepted request as the intake log keeps it: the body and when it arrived, and where
    it came from when not from Alertmanager (journeys log their signals the same way)."""

    received_at: AwareDatetime
    payload: WebhookPayload
    source: NotRequired[Source]


_PAYLOAD = TypeAdapter(WebhookPayload)
_LOG_ENTRIES = TypeAdapter(list[LoggedRequest])
_LOG_ENTRY = TypeAdapter(LoggedRequest)
_RECORD_ITEMS = TypeAdapter(list[Any])


class PayloadError(ValueError):
    """A rejected payload: ``field`` names the first offending field, ``errors`` all of them."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{errors[0]['field']}: {errors[0]['reason']}")
        self.field = errors[0]["field"]
        self.errors = errors


def parse_payload(body: bytes) -> WebhookPayload:
    """Validate a webhook body, or raise PayloadError naming the fields."""
    try:
        payload = _PAYLOAD.validate_json(body)
    except ValidationError as err:
        raise PayloadError([_describe(error) for error in err.errors()[:20]]) from None
    if _NUL in body:  # rare, so only then is the payload walked to name the field
        fields = _with_nul(payload, "")
        if fields:
            reason = "contains a NUL character (\\u0000), which cannot be stored"
            raise PayloadError([{"field": field, "reason": reason} for field in fields[:20]])
    return payload


def _with_nul(value: object, path: str) -> list[str]:
    """Paths of the strings (keys included) in a parsed payload that hold a NUL."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            found += [here] if "\x00" in str(key) else _with_nul(item, here)
        return found
    if isinstance(value, list):
        return [f for index, item in enumerate(value) for f in _with_nul(item, f"{path}[{index}]")]
    return []


def _describe(error: object) -> dict[str, str]:
    details = dict(error)  # type: ignore[call-overload]
    path = field_path(details["loc"])
    reason = details["msg"]
    if details["type"] == "literal_error" and path == "version":
        reason = "only webhook payload version 4 is supported (custom payload templates are not)"
    elif details["type"] == "json_invalid":
        path, reason = "body", "not valid JSON"
    return {"field": path or "body", "reason": reason}


def fingerprint_of(labels: dict[str, str]) -> str:
    """A stable stand-in for senders that omit Alertmanager's fingerprint."""
    text = "\xff".join(f"{name}\xfe{value}" for name, value in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ends_at_of(alert: WebhookAlert) -> datetime | None:
    """The alert's endsAt, None when absent or Go's zero time (as Alertmanager writes it)."""
    ends_at = alert.get("endsAt")
    return None if ends_at is None or ends_at.year <= _ZERO_YEAR else ends_at


def to_signals(
    payload: WebhookPayload, received_at: datetime, source: Source = Source.ALERTMANAGER
) -> list[Signal]:
    """One signal per alert; an alert whose endsAt has passed counts as resolved."""
    signals = []
    group_key = payload.get("groupKey", "")
    receiver = payload.get("receiver", "")
    for alert in payload["alerts"]:
        labels = alert["labels"]
        ends_at = ends_at_of(alert)
        status = alert["status"]
        if status is AlertStatus.FIRING and ends_at is not None and ends_at <= received_at:
            status = AlertStatus.RESOLVED
        signals.append(
            Signal(
                source=source,
                name=labels.get("alertname", ""),
                fingerprint=alert.get("fingerprint", "").lower() or fingerprint_of(labels),
                status=status,
                starts_at=alert["startsAt"].astimezone(UTC),
                ends_at=ends_at.astimezone(UTC) if ends_at else None,
                labels=labels,
                annotations=alert.get("annotations", {}),
                received_at=received_at,
                group_key=group_key,
                receiver=receiver,
            )
        )
    return signals


def alertnames(payload: WebhookPayload) -> tuple[str, ...]:
    """The distinct alert names of a webhook's alerts, sorted."""
    return tuple(sorted({alert["labels"].get("alertname", "") for alert in payload["alerts"]}))


def log_entry(body: bytes, received_at: datetime) -> bytes:
    """An accepted body framed with its arrival time, ready to join into an intake log record.

    The body is embedded as received: it has just parsed as JSON with the parser that reads it
    back, so no re-encoding is needed on the request path.
    """
    return b'{"received_at":"%s","payload":%s}' % (received_at.isoformat().encode(), body)


def log_record(entries: list[bytes]) -> bytes:
    """Entries joined into one record (a JSON array)."""
    return b"[" + b",".join(entries) + b"]"


def record_entries(record: bytes) -> list[Any]:
    """The entries of a record one by one (to read, store or set aside each alone when the
    record as a whole fails), parsed by the parser intake validated them with: a stricter one
    would refuse what intake accepted (``1e400`` in a field nobody reads, say)."""
    return _RECORD_ITEMS.validate_json(record)


def signals_from_entry(entry: Any) -> list[Signal]:
    """The signals of one entry of a record, as ``record_entries`` gives it."""
    logged = _LOG_ENTRY.validate_python(entry)
    return to_signals(
        logged["payload"], logged["received_at"], logged.get("source", Source.ALERTMANAGER)
    )


def signals_from_record(record: bytes) -> list[Signal]:
    """Every signal of an intake log record, in arrival order."""
    signals: list[Signal] = []
    for entry in _LOG_ENTRIES.validate_json(record):
        source = entry.get("source", Source.ALERTMANAGER)
        signals.extend(to_signals(entry["payload"], entry["received_at"], source))
    return signals
