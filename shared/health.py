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
        if refused_command(exc):
            # The server is up and said no: our command is wrong for it (keys in two hash
            # slots, a script it does not hold, a key of another type). Riding it out as
            # an outage would hide it behind working answers, so it is logged as the defect
            # it is, every time, and the next request tries again.
            log.error("%s REFUSED A COMMAND (a defect in this code, not an outage): %s", self.name, exc)
            return
        self._down_until = self._clock() + self._cooldown_s
        self._log.warning(
            self.name, "%s unavailable, working without it for %.0fs: %s", self.name, self._cooldown_s, exc
        )


# What a Redis that is up says when it refuses what it was sent (redis-py turns some
# reply prefixes into classes and strips them), and the cluster client's own refusal
# of keys in two slots before it sends anything.
REFUSED_CLASSES = ("ClusterCrossSlotError", "MovedError", "AskError", "NoScriptError", "TryAgainError")
REFUSED_TEXT = ("CROSSSLOT", "WRONGTYPE", "unknown command", "ERR unknown command", "NOSCRIPT", "MOVED", "ASK ")


def refused_command(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover - every service that uses Redis ships redis-py
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & set(REFUSED_CLASSES):
        return True
    if isinstance(exc, redis.exceptions.RedisClusterException) and "same key slot" in str(exc):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(REFUSED_TEXT)
