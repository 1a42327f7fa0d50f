"""How the service's processes collect garbage once started (``tune_garbage_collection``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from detector.service.serve import YOUNG_COLLECTION_EVERY, tune_garbage_collection


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
async def test_start_up_objects_are_frozen_and_young_ones_collected_in_large_batches() -> None:
    built_at_start_up = [{"rule": n} for n in range(100)]
    _, middle, old = gc.get_threshold()
    await tune_garbage_collection()
    assert gc.get_freeze_count() >= len(built_at_start_up)
    assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, middle, old)
    young_before = gc.get_count()[0]
    allocated = [[n] for n in range(1000)]
    assert gc.get_count()[0] >= young_before + len(allocated)  # no young collection ran
