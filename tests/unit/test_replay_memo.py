"""A byte-identical resend is recognised only while it would still read the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detector.intake.alertmanager import parse_payload
from detector.intake.replay_memo import ReplayMemo, digest_of
from tests.unit.test_intake import alert, body

T = datetime(2026, 11, 22, 17, 13, 10, tzinfo=UTC)
WINDOW = timedelta(seconds=10)


def _stored(raw: bytes, memo: ReplayMemo, at: datetime = T) -> bytes:
    digest = digest_of(raw)
    memo.remember(digest, parse_payload(raw), at)
    return digest


@pytest.mark.parametrize(
    ("ends_at", "status", "resent_after", "recalled"),
    [
        (None, "firing", timedelta(0), 2),
        (None, "firing", timedelta(seconds=9.9), 2),
        (None, "firing", WINDOW, None),  # the window is over
        (None, "firing", timedelta(minutes=5), None),
        # a firing alert whose endsAt passes reads as resolved from then on
        (T + timedelta(seconds=3), "firing", timedelta(seconds=2.9), 2),
        (T + timedelta(seconds=3), "firing", timedelta(seconds=3), None),
        # already past when first stored: the resend reads the same (resolved) way
        (T - timedelta(seconds=3), "firing", timedelta(seconds=5), 2),
        # a resolved alert's endsAt changes nothing
        (T + timedelta(seconds=3), "resolved", timedelta(seconds=5), 2),
    ],
)
def test_recall_only_while_the_body_reads_the_same(
    ends_at: datetime | None, status: str, resent_after: timedelta, recalled: int | None
) -> None:
    memo = ReplayMemo(WINDOW)
    changing = alert(status=status, endsAt=ends_at.isoformat() if ends_at else None)
    raw = body(alert(fingerprint="aa01"), changing)
    digest = _stored(raw, memo)
    assert memo.recall(digest, T + resent_after) == recalled


def test_any_changed_byte_is_a_different_body() -> None:
    memo = ReplayMemo(WINDOW)
    _stored(body(alert()), memo)
    assert memo.recall(digest_of(body(alert(status="resolved"))), T) is None
    assert memo.recall(digest_of(body(alert()) + b" "), T) is None


def test_a_zero_window_remembers_nothing() -> None:
    memo = ReplayMemo(timedelta(0))
    digest = _stored(body(alert()), memo)
    assert memo.recall(digest, T) is None
    assert len(memo) == 0


def test_forgets_the_oldest_beyond_its_bound_and_what_aged_out() -> None:
    memo = ReplayMemo(WINDOW, max_entries=2)
    first, second, third = (
        _stored(body(alert(fingerprint=f"f{n}")), memo, T + timedelta(seconds=n)) for n in range(3)
    )
    assert [memo.recall(d, T + timedelta(seconds=3)) for d in (first, second, third)] == [
        None,
        1,
        1,
    ]
    _stored(body(alert(fingerprint="f9")), memo, T + timedelta(seconds=12.5))
    assert len(memo) == 1  # entries stored at T+1 s and T+2 s aged out


def test_forgets_everything_after_a_rule_change() -> None:
    memo = ReplayMemo(WINDOW)
    digest = _stored(body(alert()), memo)
    memo.forget_all()
    assert (memo.recall(digest, T), len(memo)) == (None, 0)
