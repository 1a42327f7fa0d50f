"""The report's chart: the order rate across an incident against its baseline, as a small
self-contained SVG (no script, no external resources), drawn from the impact samples."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from detector.domain.impact import ImpactSample

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
PER_MINUTE = 60.0


def order_rate_chart(
    samples: Sequence[ImpactSample], opened_at: datetime, resolved_at: datetime | None
) -> str:
    """The chart, or an empty string when no sample was measured (there is nothing to draw)."""
    measured = [s for s in samples if s.orders is not None]
    if not measured:
        return ""
    start = min(opened_at, measured[0].at)
    end = max(resolved_at or measured[-1].at, measured[-1].at)
    seconds = max((end - start).total_seconds(), 1.0)
    peak = max(max(s.orders.rate, s.orders.baseline) for s in measured if s.orders) * PER_MINUTE
    peak = peak * 1.1 or 1.0

    def x(at: datetime) -> float:
        return LEFT + (at - start).total_seconds() / seconds * (WIDTH - LEFT - RIGHT)

    def y(per_second: float) -> float:
        return TOP + (1 - per_second * PER_MINUTE / peak) * (HEIGHT - TOP - BOTTOM)

    rate = " ".join(f"{x(s.at):.1f},{y(s.orders.rate):.1f}" for s in measured if s.orders)
    baseline = " ".join(f"{x(s.at):.1f},{y(s.orders.baseline):.1f}" for s in measured if s.orders)
    bottom = HEIGHT - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        ' aria-label="Order rate across the incident against its baseline">',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{bottom - TOP}"'
        ' fill="#fafafa" stroke="#ccc"/>',
        _shade(x(opened_at), x(resolved_at or end), bottom),
        f'<polyline points="{baseline}" fill="none" stroke="#888" stroke-width="2"'
        ' stroke-dasharray="6 4"><title>baseline</title></polyline>',
        f'<polyline points="{rate}" fill="none" stroke="#c0392b" stroke-width="2">'
        "<title>orders per minute</title></polyline>",
        _label(4, TOP + 10, f"{peak:.0f}/min"),
        _label(4, bottom, "0"),
        _label(LEFT, HEIGHT - 22, start.strftime("%H:%M:%S")),
        _label(WIDTH - RIGHT - 60, HEIGHT - 22, end.strftime("%H:%M:%S")),
        _label(LEFT, HEIGHT - 6, "— orders per minute   - - baseline   ▒ incident open"),
        "</svg>",
    ]
    return "".join(parts)


def _shade(left: float, right: float, bottom: float) -> str:
    width = max(right - left, 1.0)
    return (
        f'<rect x="{left:.1f}" y="{TOP}" width="{width:.1f}" height="{bottom - TOP}"'
        ' fill="#f5d5d0" opacity="0.5"/>'
    )


def _label(left: float, top: float, text: str) -> str:
    return (
        f'<text x="{left:.1f}" y="{top:.1f}" font-family="sans-serif" font-size="11"'
        f' fill="#333">{escape(text)}</text>'
    )
