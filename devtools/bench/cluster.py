"""The quote path against a cluster-mode Redis, as ElastiCache Serverless is."""

from __future__ import annotations

import json
import os
import statistics
import time

from devtools.bench.common import LambdaContext, api_event, ms, verdict
from devtools.doubles.fake_polygon import FakePolygon


def bench_cluster(redis_url: str, fake: FakePolygon, samples: int) -> None:
    """The quote hit path on a cluster-mode, TLS-only Redis (what ElastiCache Serverless
    is) against the single plain node, in one run: handler medians and their ratio, each
    beside a raw GET of its own server."""
    import redis

    from devtools.doubles.servers import RedisClusterTLS
    from shared.cache import connect
    from tests.apps import load_app

    print("\n== quote hit path: cluster-mode TLS Redis (3 nodes) vs the single node ==")
    cluster = RedisClusterTLS(nodes=3)
    results = {}
    try:
        for name, url, is_cluster in (("single node", redis_url, False), ("cluster, TLS", cluster.url, True)):
            os.environ.update(
                REDIS_URL=url,
                REDIS_CLUSTER="1" if is_cluster else "0",
                POLYGON_BASE_URL=fake.url,
                POLYGON_MAX_CALLS_PER_MIN="100000",
            )
            module = load_app("quote")
            module.runtime.reset()
            raw = connect(url, 1.0, cluster=is_cluster) if is_cluster else redis.Redis.from_url(url)
            event = api_event("/api/quote", {"symbol": "AAPL"})
            context = LambdaContext()
            assert module.app(event, context)["statusCode"] == 200
            handler, get = [], []
            for _ in range(samples):
                t0 = time.perf_counter()
                response = module.app(event, context)
                t1 = time.perf_counter()
                raw.get("{mds}quote:AAPL")
                get.append(time.perf_counter() - t1)
                handler.append(t1 - t0)
            assert json.loads(response["body"])["cache"]["status"] == "hit", response["body"]
            results[name] = (statistics.median(handler), statistics.median(get))
            print(f"  {name}: handler p50 {ms(results[name][0])}, raw GET p50 {ms(results[name][1])}")
            module.runtime.reset()
        ratio = results["cluster, TLS"][0] / results["single node"][0]
        print(f"  cluster / single node, handler p50: {ratio:.2f}x; goal within 1.2x: {verdict(ratio <= 1.2)}")
    finally:
        os.environ.update(REDIS_URL=redis_url, REDIS_CLUSTER="0")
        cluster.stop()
