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


# Every key of the quote path and the budget carries this hash tag, so that they all
# live in one hash slot: a cluster-mode server (ElastiCache Serverless is one, and
# always is) refuses a multi-key command (MGET, a script, a transaction) whose keys
# are in different slots with CROSSSLOT. One slot is one shard; the keyspace here is a
# few thousand small keys, far inside what one shard serves.
SLOT = "{mds}"
# The upstream calls a minute, shared by every process that calls the vendor with one key.
BUDGET_KEY = f"{SLOT}polygon:budget"


def connect(url: str, timeout_s: float, cluster: bool = False):
    """A Redis client that fails fast: short socket timeouts and no hidden retries.

    redis-py retries failed commands three times by default, which would triple
    the time a request waits on a dead Redis before it bypasses it. ``cluster``:
    a cluster-mode server (``REDIS_CLUSTER``), reached through ``OneSlotRedis``.
    ``rediss://`` is TLS.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if cluster:
        from redis.cluster import RedisCluster

        return OneSlotRedis(
            RedisCluster.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
            )
        )
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        max_connections=64,
    )


class OneSlotRedis:
    """The node of a cluster that holds ``SLOT``, used as a plain client.

    Every key here is in that one slot, so MGETs, scripts and pipelines can go to one
    node as they would to a single Redis; redis-py's cluster client refuses multi-key
    commands in its pipelines outright. Built lazily (no network until the first
    command). A MOVED reply (the slot moved: Serverless rebalancing, a failover) makes
    it ask the cluster for the slot's node again before the next command; the command
    that met it fails like any Redis error."""

    def __init__(self, cluster):
        self.cluster = cluster
        self._client = None

    def _node_client(self):
        if self._client is None:
            node = self.cluster.get_node_from_key(SLOT)
            self._client = self.cluster.get_redis_connection(node)
        return self._client

    def _moved(self) -> None:
        self._client = None
        self.cluster.nodes_manager.initialize()

    def _guard(self, fn):
        import redis

        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (redis.exceptions.MovedError, redis.exceptions.AskError):
                self._moved()
                raise

        return call

    def pipeline(self, *args, **kwargs):
        pipe = self._node_client().pipeline(*args, **kwargs)
        pipe.execute = self._guard(pipe.execute)
        return pipe

    def register_script(self, script):
        from redis.commands.core import Script

        # This wrapper speaks for the one slot's client: Script only calls its methods.
        return Script(self, script)  # type: ignore[arg-type]

    def __getattr__(self, name):
        attr = getattr(self._node_client(), name)
        return self._guard(attr) if callable(attr) else attr


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

    def put(self, name: str, value: dict, keep_s: float, pipe=None) -> None:
        """Store ``value`` (in ``pipe`` when given, to be executed with others)."""
        (pipe or self.redis).set(
            self.key(name), json.dumps(value, separators=(",", ":")), px=max(1, int(keep_s * 1000))
        )


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
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then released = released + redis.call('DEL', key) end
end
return released
"""


class RedisLock:
    """``SET NX PX`` with an owner token, released only by its owner.

    Many names are taken in one pipelined round trip under one token (a batch
    of symbols), and released with one script call.
    """

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

    def acquire_many(self, names: list[str], ttl_s: float, token: str) -> list[str]:
        """The names this call now holds under ``token`` (the others are held elsewhere)."""
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.set(self.key(name), token, nx=True, px=max(1, int(ttl_s * 1000)))
        return [name for name, got in zip(names, pipe.execute()) if got]

    def release(self, name: str, token: str) -> None:
        self._release(keys=[self.key(name)], args=[token])

    def release_many(self, names: list[str], token: str) -> None:
        if names:
            self._release(keys=[self.key(n) for n in names], args=[token])


# Refresh candidates: symbols whose cached quote expires before ARGV[2] (soonest
# first) and that were asked for since ARGV[3], at most ARGV[4]. A symbol no longer
# asked for is dropped from the expiry set as it is met, so both sets stay the size
# of what is in demand. The script touches only the keys it is given (a cluster-mode
# server refuses others); which candidates are being fetched now is read after it.
_CANDIDATES = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]) * 4 + 16)
local out = {}
for _, symbol in ipairs(due) do
  local asked = redis.call('ZSCORE', KEYS[2], symbol)
  if asked and tonumber(asked) >= tonumber(ARGV[3]) then
    table.insert(out, symbol)
    if #out >= tonumber(ARGV[4]) then break end
  else
    redis.call('ZREM', KEYS[1], symbol)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
return out
"""


class RefreshTracker:
    """Which cached quotes are worth refreshing when an upstream call is made anyway.

    *Hot* means asked for in the last ``hot_s`` seconds: ``hot`` is a sorted set
    of symbol -> the last time it was asked, written at most every
    ``mark_every_s`` per symbol and process (in the same round trip as the
    cache read, so a cache hit pays nothing extra most of the time).
    ``expiry`` holds symbol -> when its cached quote stops being fresh, written
    with the quote. *Close to expiry* means expiring within ``ahead_s``, or
    already expired while still hot.

    Every key is in the one hash slot of ``SLOT``; the candidate script declares
    the keys it touches, and the locks of its candidates are read in one MGET after
    it (a symbol being fetched now is not a candidate).
    """

    def __init__(self, redis, hot_key: str, expiry_key: str, lock_prefix: str, hot_s: float, ahead_s: float):
        self.redis = redis
        self.hot_key = hot_key
        self.expiry_key = expiry_key
        self.lock_prefix = lock_prefix
        self.hot_s = hot_s
        self.ahead_s = ahead_s
        self._candidates = redis.register_script(_CANDIDATES)

    def mark_hot(self, pipe, symbols: list[str], now: float) -> None:
        pipe.zadd(self.hot_key, {s: now for s in symbols}, gt=True)
        pipe.pexpire(self.hot_key, int(self.hot_s * 1000) + 60_000)

    def set_expiry(self, pipe, expires: dict[str, float]) -> None:
        if expires:
            pipe.zadd(self.expiry_key, expires)

    def candidates(self, want: int, now: float) -> list[str]:
        if want <= 0:
            return []
        found = self._candidates(
            keys=[self.expiry_key, self.hot_key], args=[now, now + self.ahead_s, now - self.hot_s, 2 * want]
        )
        found = [s.decode() if isinstance(s, bytes) else s for s in found]
        if not found:
            return []
        locked = self.redis.mget([f"{self.lock_prefix}{s}" for s in found])
        return [s for s, lock in zip(found, locked, strict=False) if lock is None][:want]


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


class FallbackBudget:
    """The shared allowance in Redis, and this process's own for each call Redis cannot
    take (down, too slow, or answering garbage): a long batch run outlives a Redis outage."""

    def __init__(self, shared: RedisBudget, local: LocalBudget):
        self.shared = shared
        self.local = local
        self._warned = 0.0

    def acquire(self) -> None:
        import redis

        try:
            return self.shared.acquire()
        except BudgetExceeded:
            raise
        except (redis.RedisError, OSError, redis.exceptions.RedisClusterException) as exc:
            from shared.health import refused_command

            if refused_command(exc):
                log.error("Redis REFUSED the budget's command (a defect in this code, not an outage): %s", exc)
            elif time.monotonic() - self._warned > 60:
                log.warning("Redis unavailable (%s): the upstream budget is this process's own", exc)
                self._warned = time.monotonic()
            return self.local.acquire()
