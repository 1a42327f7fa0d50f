"""The status page in a real headless Chromium, with JavaScript off, at a phone's width and a
desktop's: the open incident and the component statuses are there in words, nothing scrolls
sideways, the landmarks exist, and every status text meets WCAG AA contrast. A screenshot of
each is kept under ``tests/artifacts/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.api.test_status_page import NOTICE, open_public_incident, settings_overrides
from tests.conftest import Shop

__all__ = ["settings_overrides"]  # the shop fixture reads the status page settings from it

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CONTRAST = """
() => {
  const luminance = (rgb) => {
    const [r, g, b] = rgb.match(/\\d+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = luminance(getComputedStyle(document.body).backgroundColor);
  return [...document.querySelectorAll('.level, .overall, .meta, .component-description')]
    .map((el) => {
      const fg = luminance(getComputedStyle(el).color);
      const [hi, lo] = fg > background ? [fg, background] : [background, fg];
      return [el.textContent.trim(), (hi + 0.05) / (lo + 0.05)];
    });
}
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.mark.parametrize(
    ("device", "width", "height"), [("phone", 390, 844), ("desktop", 1280, 900)]
)
async def test_the_status_page_reads_well_without_javascript(
    shop: Shop, browser: Browser, device: str, width: int, height: int
) -> None:
    await open_public_incident(shop)
    context = await browser.new_context(
        viewport={"width": width, "height": height}, java_script_enabled=False
    )
    page = await context.new_page()

    response = await page.goto(str(shop.client.make_url("/status")))
    assert response is not None
    assert response.status == 200
    text = await page.inner_text("body")
    overflow = await _sideways_overflow(browser, page.url, width, height)
    landmarks = {
        role: await page.locator(selector).count()
        for role, selector in (("banner", "header"), ("main", "main"), ("footer", "footer"))
    }
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"status-page-{device}.png", full_page=True)
    await context.close()

    assert NOTICE.name in text
    assert NOTICE.body in text
    assert "Checkout" in text
    assert "Partial outage" in text  # the status in words
    assert "Partial System Outage" in text
    assert "Next update by" in text
    assert landmarks == {"banner": 1, "main": 1, "footer": 1}
    assert overflow <= 0
    assert (ARTIFACTS / f"status-page-{device}.png").stat().st_size > 0


async def test_status_texts_meet_contrast_aa(shop: Shop, browser: Browser) -> None:
    await open_public_incident(shop)
    page = await browser.new_page()
    await page.goto(str(shop.client.make_url("/status")))

    ratios = await page.evaluate(CONTRAST)

    assert ratios
    low = [(text, round(ratio, 2)) for text, ratio in ratios if ratio < 4.5]
    assert low == []


async def _sideways_overflow(browser: Browser, url: str, width: int, height: int) -> int:
    """How many CSS pixels the page is wider than the viewport (measured with scripts on, in a
    context of its own: the page under test has them off)."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    await page.goto(url)
    overflow: int = await page.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth"
    )
    await context.close()
    return overflow
