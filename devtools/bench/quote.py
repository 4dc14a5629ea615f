"""The quote path: a cache hit against a raw Redis GET (the physical floor), a miss against
the vendor's own latency, and the relay hop."""

from __future__ import annotations

import json
import os
import statistics
import time

from devtools.bench.cluster import bench_cluster
from devtools.bench.common import LambdaContext, api_event, ms, percentile, verdict
from devtools.bench.traces import bench_dashboard_trace, bench_zipf
from devtools.doubles.fake_polygon import FakePolygon


def bench_quote(redis_url: str, fake: FakePolygon, samples: int) -> None:
    import redis

    from tests.apps import load_app

    print("\n== quote service ==")
    os.environ.update(REDIS_URL=redis_url, POLYGON_BASE_URL=fake.url, POLYGON_MAX_CALLS_PER_MIN="100000")
    module = load_app("quote")
    module.runtime.reset()
    raw = redis.Redis.from_url(redis_url)
    raw.flushdb()
    event = api_event("/api/quote", {"symbol": "AAPL"})
    context = LambdaContext()
    first = module.app(event, context)
    assert first["statusCode"] == 200, first

    # 1. cache hit: the handler as Lambda calls it vs a raw GET of the same key
    handler_times, get_times = [], []
    for _ in range(samples):
        t0 = time.perf_counter()
        response = module.app(event, context)
        t1 = time.perf_counter()
        raw.get("{mds}quote:AAPL")
        t2 = time.perf_counter()
        handler_times.append(t1 - t0)
        get_times.append(t2 - t1)
    assert json.loads(response["body"])["cache"]["status"] == "hit"
    h50, h99 = percentile(handler_times, 0.5), percentile(handler_times, 0.99)
    g50, g99 = percentile(get_times, 0.5), percentile(get_times, 0.99)
    print(
        f"cache hit, {samples} requests: handler p50 {ms(h50)} p99 {ms(h99)}; "
        f"raw Redis GET p50 {ms(g50)} p99 {ms(g99)}; ratio p50 {h50 / g50:.2f}x"
    )
    print(f"  goal p50 < 1 ms: {verdict(h50 < 0.001)}; goal < 2x raw GET: {verdict(h50 < 2 * g50)}")
    print(f"  each request writes its summary line as in Lambda: {last_line_bytes()} bytes, its EMF metrics included")

    # 2. miss: with the fake Polygon answering after a set delay
    delay = 0.020
    fake.delay_s = delay
    miss_times = []
    for _ in range(40):
        raw.delete("{mds}quote:AAPL")
        t0 = time.perf_counter()
        response = module.app(event, context)
        miss_times.append(time.perf_counter() - t0)
    fake.delay_s = 0
    m50 = statistics.median(miss_times)
    print(
        f"cache miss with upstream delay {ms(delay)}: handler p50 {ms(m50)}, "
        f"overhead beyond the delay {ms(m50 - delay)} (seed target: < 200 ms per quote)"
    )

    bench_relay(module, redis_url, fake, raw, event, context)

    # 3. 64 cold requests from 4 processes for one symbol
    from devtools.bench.processes import concurrent_cold_requests

    raw.flushdb()
    fake.reset()
    fake.delay_s = 0.2
    statuses = concurrent_cold_requests(
        {"REDIS_URL": redis_url, "POLYGON_BASE_URL": fake.url, "POLYGON_MAX_CALLS_PER_MIN": "1000"}, "MSFT", 4, 16
    )
    fake.delay_s = 0
    calls = fake.count("MSFT")
    print(
        f"64 concurrent cold requests from 4 processes: {calls} upstream call(s), "
        f"answers {dict((s, statuses.count(s)) for s in set(statuses))}; goal exactly 1: {verdict(calls == 1)}"
    )

    bench_cluster(redis_url, fake, min(samples, 3000))

    # 4. Zipf workload over 500 symbols, 10 simulated minutes; then dashboards polling watchlists
    bench_zipf(redis_url, fake, raw)
    bench_dashboard_trace(redis_url, fake, raw)


def last_line_bytes() -> int:
    """The size of the last JSON line the apps wrote (main() sends them to a file)."""
    import logging

    for handler in logging.getLogger().handlers:
        if getattr(handler, "json_lines", False) and hasattr(handler.stream, "name"):
            handler.flush()
            with open(handler.stream.name, "rb") as f:
                tail = f.read().splitlines()
            return len(tail[-1]) + 1 if tail else 0
    return 0


def bench_relay(module, redis_url: str, fake: FakePolygon, raw, event: dict, context, rounds: int = 40) -> None:
    """A quote miss straight to the vendor and through the vendor relay (the path the
    functions in the VPC take), alternating, in one run: what the extra hop adds."""
    from devtools.doubles.local_lambda import relay_function_name, serve_relay

    relay = serve_relay({"POLYGON_BASE_URL": fake.url}, 0)
    relayed = {
        "POLYGON_RELAY_FUNCTION": relay_function_name(),
        "AWS_ENDPOINT_URL_LAMBDA": relay.url,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }
    delay = 0.020
    fake.delay_s = delay
    times: dict[str, list[float]] = {"direct": [], "relay": []}
    try:
        for way in ["direct", "relay"] * rounds:
            for name, value in relayed.items():
                if way == "relay":
                    os.environ[name] = value
                else:
                    os.environ.pop(name, None)
            module.runtime.reset()
            module.app(event, context)  # builds the client (and imports) outside the timing
            raw.delete("{mds}quote:AAPL")
            t0 = time.perf_counter()
            response = module.app(event, context)
            times[way].append(time.perf_counter() - t0)
            assert json.loads(response["body"])["cache"]["status"] == "miss", response
    finally:
        fake.delay_s = 0
        for name in relayed:
            os.environ.pop(name, None)
        module.runtime.reset()
        relay.stop()
    direct, through = statistics.median(times["direct"]), statistics.median(times["relay"])
    print(
        f"cache miss through the vendor relay (upstream {ms(delay)}, {rounds} each, alternating): p50 {ms(through)} "
        f"vs direct {ms(direct)}: {through / direct:.2f}x, +{ms(through - direct)} for the hop here "
        "(an Invoke on loopback; in-region on AWS a warm Invoke adds ~10-30 ms)"
    )
