"""Signed acknowledge links: they round-trip, expire, and refuse tampering with a named reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from detector.web.ack_links import AckTarget, LinkBuilder, LinkInvalid, make_token, read_token
from responders.messages import Page, PageEvent

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
KEY = b"test-signing-key"
HOUR = timedelta(hours=1)


class StoppedClock:
    """A clock that always says the same time."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: bytes, key: bytes = KEY) -> str:
    """A correctly signed token around an arbitrary payload, to reach the checks after HMAC."""
    encoded = b64(payload)
    signature = b64(hmac.new(key, encoded.encode(), hashlib.sha256).digest())
    return f"{encoded}.{signature}"


def flip_last_char(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


def invalid_reason(token: str, now: datetime = T0, key: bytes = KEY) -> str:
    with pytest.raises(LinkInvalid) as raised:
        read_token(key, token, now)
    assert str(raised.value) == raised.value.reason
    return raised.value.reason


def page(event: str, incident_id: int = 42) -> Page:
    return Page(
        event=PageEvent(event),
        incident_id=incident_id,
        title="Connection pool exhausted on eu-prod-1",
        severity="critical",
        summary="no idle server connection",
        state=event,
        rule="pool-exhausted",
        component="checkout",
        group={"cluster": "eu-prod-1"},
        step=0,
        epoch=0,
    )


class TestTokens:
    @pytest.mark.parametrize(
        ("incident_id", "read_at"),
        [
            pytest.param(1, T0, id="read at once"),
            pytest.param(987_654_321, T0 + HOUR - timedelta(seconds=1), id="last valid second"),
        ],
    )
    def test_round_trip(self, incident_id: int, read_at: datetime) -> None:
        token = make_token(KEY, incident_id, T0 + HOUR)

        assert read_token(KEY, token, read_at) == AckTarget(incident_id)

    @pytest.mark.parametrize("episode", [None, 0, 7])
    def test_round_trip_keeps_the_episode(self, episode: int | None) -> None:
        token = make_token(KEY, 42, T0 + HOUR, episode)

        assert read_token(KEY, token, T0) == AckTarget(42, episode)

    def test_token_is_url_safe(self) -> None:
        token = make_token(KEY, 42, T0 + HOUR)

        assert set(token) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )

    @pytest.mark.parametrize(
        "read_at",
        [
            pytest.param(T0 + HOUR, id="at expiry"),
            pytest.param(T0 + 30 * HOUR, id="long after"),
        ],
    )
    def test_expired(self, read_at: datetime) -> None:
        token = make_token(KEY, 42, T0 + HOUR)

        assert invalid_reason(token, now=read_at) == "expired"

    @pytest.mark.parametrize(
        ("tamper", "key"),
        [
            pytest.param(flip_last_char, KEY, id="signature changed"),
            pytest.param(
                lambda token: b64(b'{"i": 43, "x": 9999999999}') + "." + token.split(".")[1],
                KEY,
                id="payload swapped for another incident",
            ),
            pytest.param(lambda token: token, b"another-key", id="signed with another key"),
            pytest.param(lambda token: token + ".extra", KEY, id="extra segment"),
        ],
    )
    def test_bad_signature(self, tamper: Callable[[str], str], key: bytes) -> None:
        token = tamper(make_token(KEY, 42, T0 + HOUR))

        assert invalid_reason(token, key=key) == "bad_signature"

    @pytest.mark.parametrize(
        "token",
        [
            pytest.param("", id="empty"),
            pytest.param("garbage", id="no dot"),
            pytest.param("abc.", id="no signature"),
            pytest.param(".abc", id="no payload"),
            pytest.param(signed(b"not json"), id="signed but not JSON"),
            pytest.param(signed(b'{"i": 42}'), id="signed without expiry"),
            pytest.param(signed(b'{"i": "x", "x": 1}'), id="signed with a non-numeric id"),
            pytest.param(
                signed(b'{"i": 1, "x": 9999999999, "e": "x"}'), id="signed with a non-numeric epoch"
            ),
            pytest.param(signed(b"[1, 2]"), id="signed list"),
            pytest.param(signed(b"\xff\xfe"), id="signed non-UTF-8 bytes"),
        ],
    )
    def test_malformed(self, token: str) -> None:
        assert invalid_reason(token) == "malformed"

    def test_non_ascii_token_is_malformed(self) -> None:
        assert invalid_reason("eyJpIjo0Mn0.é") in {"malformed", "bad_signature"}


class TestLinkBuilder:
    def test_triggered_page_gets_an_ack_link_valid_for_the_ttl(self) -> None:
        build = LinkBuilder("https://stormwatch.example/", KEY, 2 * HOUR, StoppedClock(T0))

        links = build(page("triggered"))

        assert links.incident == "https://stormwatch.example/api/v1/incidents/42"
        assert links.acknowledge is not None
        prefix = "https://stormwatch.example/ack/"
        assert links.acknowledge.startswith(prefix)
        token = links.acknowledge.removeprefix(prefix)
        assert read_token(KEY, token, T0 + 2 * HOUR - timedelta(seconds=1)) == AckTarget(42, 0)
        assert invalid_reason(token, now=T0 + 2 * HOUR) == "expired"

    def test_expiry_follows_the_injected_clock(self) -> None:
        later = T0 + 30 * HOUR
        build = LinkBuilder("https://stormwatch.example", KEY, HOUR, StoppedClock(later))

        acknowledge = build(page("triggered")).acknowledge

        assert acknowledge is not None
        token = acknowledge.rsplit("/", 1)[1]
        assert read_token(KEY, token, later + HOUR - timedelta(seconds=1)) == AckTarget(42, 0)
        assert invalid_reason(token, now=later + HOUR) == "expired"

    @pytest.mark.parametrize("event", ["acknowledged", "resolved"])
    def test_no_ack_link_once_acknowledged_or_resolved(self, event: str) -> None:
        build = LinkBuilder("https://stormwatch.example", KEY, HOUR, StoppedClock(T0))

        links = build(page(event))

        assert links.acknowledge is None
        assert links.incident == "https://stormwatch.example/api/v1/incidents/42"
