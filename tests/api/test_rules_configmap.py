"""Rules from a Kubernetes ConfigMap volume: the kubelet publishes an edit as a new hidden
directory and swaps the ``..data`` symlink to it in one rename; the files the service reads are
symlinks through ``..data``. The rules watcher must pick that up like an edit in place."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_rules_watch import WATCH, picked_up
from tests.conftest import RULES, Shop
from tests.fakes import PageReceiver


def publish(directory: Path, text: str, version: str) -> None:
    """What the kubelet does on a ConfigMap update: write the new payload beside the old one,
    point ``..data`` at it atomically, then delete the old payload."""
    payload = directory / version
    payload.mkdir()
    (payload / "shop.yml").write_text(text)
    data = directory / "..data"
    old = data.readlink() if data.is_symlink() else None
    swap = directory / "..data_tmp"
    swap.symlink_to(version)
    swap.rename(data)
    if old is not None:
        shutil.rmtree(directory / old)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return WATCH


@pytest.fixture
def rules_dir(tmp_path: Path, pager: PageReceiver, backup: PageReceiver) -> Path:
    directory = tmp_path / "configmap"
    directory.mkdir()
    publish(directory, RULES.format(pager_url=pager.url, backup_url=backup.url), "..2026_11_27.1")
    (directory / "shop.yml").symlink_to("..data/shop.yml")
    return directory


async def test_a_configmap_update_is_picked_up(shop: Shop, rules_dir: Path) -> None:
    text = RULES.format(pager_url=shop.pager.url, backup_url=shop.backup.url)
    assert "checkout-errors" in shop.services.rules.current.rules

    publish(rules_dir, text.replace("name: checkout-errors", "name: from-configmap"), "..v2")

    await picked_up(shop, "from-configmap")
    status = await (await shop.client.get("/api/v1/rules/status")).json()
    assert status["running"]["files"] == [str(rules_dir / "shop.yml")]
