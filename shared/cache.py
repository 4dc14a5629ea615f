"""Redis pieces shared by every service: a JSON store, a cross-process lock and
a cross-process call budget, plus what to do when Redis itself is unwell.

Freshness is decided from the time stored in each value, not from Redis' key
expiry: one key then serves as both the fresh value and the last-known value
kept for when upstream fails, and a simulated clock can drive it in benchmarks.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import uuid

from shared.polygon import BudgetExceeded

log = logging.getLogger(__name__)


def connect(url: str, timeout_s: float):
    """A Redis client that fails fast: short socket timeouts and no hidden retries.

    redis-py retries failed commands three times by default, which would triple
    the time a request waits on a dead Redis before it bypasses it.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        max_connections=64,
    )


class JsonStore:
    """JSON values under a key prefix."""

    def __init__(self, redis, prefix: str):
        self.redis = redis
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get_many(self, names: list[str]) -> dict[str, dict | None]:
        raw = self.redis.mget([self.key(n) for n in names])
        return {n: loads_json(v) for n, v in zip(names, raw, strict=False)}

    def put(self, name: str, value: dict, keep_s: float) -> None:
        self.redis.set(self.key(name), json.dumps(value, separators=(",", ":")), px=max(1, int(keep_s * 1000)))


def loads_json(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        # A value we cannot read is a miss, not an outage.
        return None
    return value if isinstance(value, dict) else None


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLock:
    """``SET NX PX`` with an owner token, released only by its owner."""

    def __init__(self, redis, prefix: str):
        self.redis = redis
        self.prefix = prefix
        self._release = redis.register_script(_RELEASE)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def acquire(self, name: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        if self.redis.set(self.key(name), token, nx=True, px=max(1, int(ttl_s * 1000))):
            return token
        return None

    def release(self, name: str, token: str) -> None:
        self._release(keys=[self.key(name)], args=[token])


# A sliding window, not per-minute buckets: buckets let 2x the limit through
# around a minute boundary. The caller's clock is used so that a simulated
# clock can drive it; Lambda hosts keep their clocks in sync.
_TAKE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RedisBudget:
    """At most ``limit`` calls in any ``window_s`` across every process sharing Redis."""

    def __init__(self, redis, key: str, limit: int, window_s: float = 60.0, clock=time.time):
        self.redis = redis
        self.key = key
        self.limit = limit
        self.window_ms = int(window_s * 1000)
        self.clock = clock
        self._take = redis.register_script(_TAKE)

    def acquire(self) -> None:
        now_ms = int(self.clock() * 1000)
        wait_ms = self._take(keys=[self.key], args=[now_ms, self.window_ms, self.limit, uuid.uuid4().hex])
        if int(wait_ms) >= 0:
            raise BudgetExceeded(int(wait_ms) / 1000)


class LocalBudget:
    """The same allowance kept in this process, for when Redis is down.

    It cannot see other instances: during a Redis outage each instance may spend
    the whole allowance. The README says so.
    """

    def __init__(self, limit: int, window_s: float = 60.0, clock=time.time):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._calls: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        now = self.clock()
        with self._lock:
            while self._calls and self._calls[0] <= now - self.window_s:
                self._calls.popleft()
            if len(self._calls) >= self.limit:
                raise BudgetExceeded(max(0.001, self._calls[0] + self.window_s - now))
            self._calls.append(now)
