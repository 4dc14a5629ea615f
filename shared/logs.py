"""Logging that stays readable when a dependency is down for a while."""

from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    """Logs a recurring failure once per ``interval_s``, with how many were suppressed.

    A Redis outage would otherwise write one line per request.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0, clock=time.monotonic):
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            suppressed = self._suppressed.pop(key, 0)
            self._last[key] = now
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.warning(message, *args)
        return True
