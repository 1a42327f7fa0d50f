"""Hot reload of the rules directory: on file change, on SIGHUP, and on API request.

Every trigger goes through :meth:`RulesReloader.reload`, which validates the whole directory and
swaps it in atomically, or keeps the running rules and reports why (log, metric, status API).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import structlog

from detector.ruleset.live import LiveRules, ReloadStatus
from detector.ruleset.loader import rule_files
from detector.service.metrics import Metrics

log = structlog.get_logger(__name__)


FileState = tuple[str, int, int]


def directory_state(directory: Path) -> tuple[FileState, ...]:
    """What changes when a rule file is edited, added or removed (names, sizes, mtimes), over
    the files a load reads."""
    try:
        files = rule_files(directory)
    except OSError:
        return ()
    return tuple(state for path in files if (state := _file_state(path)) is not None)


def _file_state(path: Path) -> FileState | None:
    """None for a file gone since it was listed (an editor's rename): the next scan sees it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (path.name, stat.st_mtime_ns, stat.st_size)


class RulesReloader:
    """Reloads ``live`` and records the outcome in metrics and logs."""

    def __init__(self, live: LiveRules, directory: Path, metrics: Metrics) -> None:
        self._live = live
        self._directory = directory
        self._metrics = metrics
        self._seen = directory_state(directory)
        self._followers: list[Callable[[], None]] = []
        self._watchers: list[Callable[[], None]] = []
        self._record(live.status)
        _warn(live.status, "start")

    def forward_to(self, follower: Callable[[], None]) -> None:
        """Also call ``follower`` on every explicit reload (API, SIGHUP), e.g. to pass it on to
        the engine process; file changes each process notices by itself."""
        self._followers.append(follower)

    def on_swap(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher`` after every reload that swapped new rules in."""
        self._watchers.append(watcher)

    def reload(self, trigger: str) -> ReloadStatus:
        """Validate and swap in the directory's rules, or keep the running ones."""
        self._seen = directory_state(self._directory)
        if trigger != "file_change":
            for follower in self._followers:
                follower()
        status = self._live.reload()
        self._record(status)
        if status.ok:
            log.info("rules.reloaded", trigger=trigger, rules=len(self._live.current.rules))
            _warn(status, trigger)
            for watcher in self._watchers:
                watcher()
        else:
            log.error("rules.reload_failed", trigger=trigger, errors=list(status.errors))
        return status

    def reload_if_changed(self) -> ReloadStatus | None:
        """Reload when a rule file was edited, added or removed since the last load."""
        if directory_state(self._directory) == self._seen:
            return None
        return self.reload("file_change")

    async def watch(self, interval: timedelta) -> None:
        """Poll the directory every ``interval`` (runs until cancelled)."""
        while True:
            await asyncio.sleep(interval.total_seconds())
            try:
                self.reload_if_changed()
            except Exception:
                # Whatever failed, later edits must still be picked up.
                log.exception("rules.watch_failed")

    def _record(self, status: ReloadStatus) -> None:
        self._metrics.rules_reload_success.set(1 if status.ok else 0)
        self._metrics.rules_reload_time.set(status.at.timestamp())
        self._metrics.rules_reloads.labels("success" if status.ok else "failure").inc()
        self._metrics.rules_loaded.set(len(self._live.current.rules))


def _warn(status: ReloadStatus, trigger: str) -> None:
    """Log each warning of rules just loaded: valid, but likely a mistake."""
    for warning in status.warnings:
        log.warning("rules.warning", trigger=trigger, warning=warning)
