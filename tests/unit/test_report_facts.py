"""The report's pure parts: whether each public update's promise was kept, how durations read,
and the chart drawn from the impact samples."""

from __future__ import annotations

from datetime import timedelta

from detector.domain.impact import ImpactSample, Rates
from detector.report.chart import order_rate_chart
from detector.report.facts import PageLine, Promise, notice_lines, span, steady_order
from responders.statuspage.model import IncidentStatus, PublicUpdate
from tests.fakes import T0

MINUTE = timedelta(minutes=1)


def update(status: IncidentStatus, minutes: int, promise_in: int | None) -> PublicUpdate:
    at = T0 + minutes * MINUTE
    promised = None if promise_in is None else at + promise_in * MINUTE
    return PublicUpdate("abcdefghijkl", status, "text", at, at, promised)


def test_each_promise_is_kept_broken_or_still_pending() -> None:
    updates = [
        update(IncidentStatus.INVESTIGATING, 0, 30),
        update(IncidentStatus.IDENTIFIED, 31, 30),
        update(IncidentStatus.MONITORING, 60, 30),
    ]
    lines = notice_lines(updates, T0 + 70 * MINUTE)
    assert [line.promise for line in lines] == [Promise.BROKEN, Promise.KEPT, Promise.PENDING]
    assert notice_lines(updates, T0 + 91 * MINUTE)[-1].promise is Promise.BROKEN
    final = notice_lines([update(IncidentStatus.RESOLVED, 5, None)], T0)
    assert final[0].promise is Promise.NONE


def test_durations_read_as_people_write_them() -> None:
    assert span(None) == "-"
    assert span(timedelta(seconds=35)) == "35s"
    assert span(timedelta(minutes=4, seconds=12)) == "4m 12s"
    assert span(timedelta(hours=1, minutes=2, seconds=5)) == "1h 02m 05s"


def test_the_chart_draws_rate_and_baseline_or_nothing() -> None:
    assert order_rate_chart([], T0, None) == ""
    unknown = [ImpactSample(T0, None, unknown_reason="Prometheus unreachable")]
    assert order_rate_chart(unknown, T0, None) == ""
    samples = [
        ImpactSample(T0 + MINUTE, Rates(2.0, 2.0)),
        ImpactSample(T0 + 2 * MINUTE, Rates(0.0, 2.0)),
    ]
    svg = order_rate_chart(samples, T0, T0 + 3 * MINUTE)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.count("<polyline") == 2
    assert "<script" not in svg
    assert "132/min" in svg  # the peak, 2/s, with a tenth of headroom


def test_one_message_sent_to_several_channels_at_once_is_listed_by_channel() -> None:
    later = T0 + timedelta(minutes=7)
    on_the_timeline = [
        PageLine(T0, "page", "triggered to pager: delivered (attempt 1)"),
        PageLine(later, "page", "acknowledged to pager: delivered (attempt 1)"),
        PageLine(later, "page", "acknowledged to backup: delivered (attempt 1)"),
        PageLine(later, "page", "resolved to pager: delivered (attempt 1)"),
    ]

    assert [line.detail for line in steady_order(on_the_timeline)] == [
        "triggered to pager: delivered (attempt 1)",
        "acknowledged to backup: delivered (attempt 1)",
        "acknowledged to pager: delivered (attempt 1)",
        "resolved to pager: delivered (attempt 1)",  # a later message keeps its place
    ]
