"""Background loops: one that crashes is reported when it dies and does not stop shutdown."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from detector.service.background import BackgroundLoops


async def crashing() -> None:
    raise OSError("disk gone")


async def test_a_crashed_loop_is_logged_when_it_dies_and_the_others_still_stop() -> None:
    loops = BackgroundLoops()
    stopped = asyncio.Event()

    async def steady() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    with capture_logs() as logs:
        loops.start(steady())
        loops.start(crashing())
        async with asyncio.timeout(5):  # logged while the service runs, not at shutdown
            while not logs:  # noqa: ASYNC110 - the log is the outcome under test
                await asyncio.sleep(0.01)
        await loops.stop_all()
    [crash] = logs
    assert (crash["event"], crash["log_level"], crash["loop"]) == (
        "background.loop_crashed",
        "error",
        "crashing",
    )
    assert isinstance(crash["exc_info"], OSError)
    assert stopped.is_set()
