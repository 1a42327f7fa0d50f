"""The rules watcher: edits are picked up by polling, whatever else sits in the directory or
goes wrong in one scan."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import RULES, Shop

WATCH = {"rules_watch_interval": "20ms"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return WATCH


def edit(shop: Shop, rules_dir: Path, old: str, new: str) -> None:
    text = RULES.format(pager_url=shop.pager.url, backup_url=shop.backup.url)
    assert old in text
    (rules_dir / "shop.yml").write_text(text.replace(old, new))


async def picked_up(shop: Shop, rule: str, timeout: float = 5) -> None:
    """Wait (bounded) until the watcher has swapped in a rule set with ``rule``."""
    async with asyncio.timeout(timeout):
        while rule not in shop.services.rules.current.rules:  # noqa: ASYNC110 - polling is what is tested
            await asyncio.sleep(0.02)


class TestEmacsLockFile:
    """Emacs marks a file it edits with a dangling symlink, ``.#name``, next to it."""

    @pytest.fixture
    def rules_dir(self, rules_dir: Path) -> Path:
        (rules_dir / ".#shop.yml").symlink_to("sre@laptop.4242:1700000000")
        return rules_dir

    async def test_the_service_starts_and_picks_up_the_edit(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        edit(shop, rules_dir, "name: checkout-errors", "name: checkout-error-spike")
        await picked_up(shop, "checkout-error-spike")
        status = await (await shop.client.get("/api/v1/rules/status")).json()
        assert status["running"]["files"] == [str(rules_dir / "shop.yml")]


class TestWatcherFailure:
    async def test_a_failed_scan_is_logged_and_later_edits_are_still_picked_up(
        self, shop: Shop, rules_dir: Path
    ) -> None:
        failures = ["once"]

        def fail_once() -> None:
            if failures:
                raise OSError(f"failing {failures.pop()}")

        shop.services.reloader.on_swap(fail_once)
        with capture_logs() as logs:
            edit(shop, rules_dir, "name: checkout-errors", "name: first-edit")
            await picked_up(shop, "first-edit")
            edit(shop, rules_dir, "name: checkout-errors", "name: second-edit")
            await picked_up(shop, "second-edit")
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["rules.watch_failed"]
