"""Skipping a dependency for a while after it fails, instead of paying its
timeout on every request, and saying so in the log without flooding it."""

from __future__ import annotations

import logging
import time

from shared.logs import ThrottledLog

log = logging.getLogger(__name__)


class DependencyHealth:
    def __init__(self, name: str, cooldown_s: float = 5.0, clock=time.monotonic):
        self.name = name
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._down_until = 0.0
        self._log = ThrottledLog(log, 60.0, clock)

    def available(self) -> bool:
        return self._clock() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        self._down_until = self._clock() + self._cooldown_s
        self._log.warning(
            self.name, "%s unavailable, working without it for %.0fs: %s", self.name, self._cooldown_s, exc
        )
