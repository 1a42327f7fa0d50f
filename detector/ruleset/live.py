"""The rule set the service runs, together with the channels built from it, swapped as one unit.

A reload validates the whole directory first; an invalid directory leaves the running rules in
place and records why, so a typo in a hurry never turns detection off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from detector.ruleset.loader import RulesInvalid, load_ruleset
from detector.ruleset.rules import RuleSet
from responders.channels.protocol import Channel

ChannelFactory = Callable[[RuleSet], Mapping[str, Channel]]


class ChannelConfigError(ValueError):
    """A channel cannot be built (for example its ``url_env`` variable is not set)."""


@dataclass(frozen=True, slots=True)
class Routes:
    """A validated rule set and the channels it pages through."""

    rules: RuleSet
    channels: Mapping[str, Channel]


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """The outcome of the latest load or reload."""

    ok: bool
    at: datetime
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    """The running rules' warnings (``file:line: field: warning: ...``), kept on a failure."""


class LiveRules:
    """Holds the current Routes; readers always see a complete, valid set."""

    def __init__(
        self,
        directory: Path,
        channels: ChannelFactory,
        now: Callable[[], datetime],
        start_with: RuleSet | None = None,
    ) -> None:
        """Load ``directory``, or start with ``start_with`` (rules already validated, such as
        those a restarted engine process's predecessor ran) and leave reading it to a reload."""
        self._directory = directory
        self._channels = channels
        self._now = now
        self._routes = self._build(start_with)
        self.status = ReloadStatus(ok=True, at=now(), warnings=self._warnings())

    @property
    def routes(self) -> Routes:
        """The rules and channels in force now."""
        return self._routes

    @property
    def current(self) -> RuleSet:
        """The rule set in force now."""
        return self._routes.rules

    def reload(self) -> ReloadStatus:
        """Validate and swap in the directory's rules; on error keep the running ones."""
        try:
            self._routes = self._build()
        except RulesInvalid as err:
            errors = tuple(str(e) for e in err.errors)
            self.status = ReloadStatus(False, self._now(), errors, self._warnings())
        except ChannelConfigError as err:
            self.status = ReloadStatus(False, self._now(), (str(err),), self._warnings())
        else:
            self.status = ReloadStatus(True, self._now(), warnings=self._warnings())
        return self.status

    def _warnings(self) -> tuple[str, ...]:
        return tuple(str(warning) for warning in self._routes.rules.warnings)

    def _build(self, rules: RuleSet | None = None) -> Routes:
        """Routes for ``rules``, or for the directory's when None."""
        if rules is None:
            rules = load_ruleset(self._directory, self._now())
        return Routes(rules, self._channels(rules))
