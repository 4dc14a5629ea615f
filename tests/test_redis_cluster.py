"""The quote path, single-flight, the hot-set refresh, the shared budget and the alerts
check's quote reads against what ElastiCache Serverless is: a cluster-mode Redis that
speaks TLS only (three real redis-server nodes sharing the 16,384 slots, on loopback,
started here). The tests below are the single-node suite's own, collected again with
``redis_url`` pointing at the cluster; any command the cluster refuses (CROSSSLOT, MOVED,
NOSCRIPT, WRONGTYPE) fails the test that made it, whatever its answers were."""

from __future__ import annotations

import json
import logging

import pytest

from tests.test_alerts_check import (  # noqa: F401 - collected again, on the cluster
    test_scheduled_check_fires_and_delivers_exactly_once,
    test_stale_quotes_are_used_and_marked_until_too_old,
    test_the_check_gets_its_quotes_in_one_call_per_chunk,
)
from tests.test_quote_api import (  # noqa: F401
    test_batch_mixes_results_and_errors,
    test_miss_then_hit_with_vendor_timestamp,
    test_unknown_symbol_is_404_and_remembered,
    test_upstream_budget_is_never_exceeded,
    test_upstream_failure_serves_last_known_value_as_stale,
)
from tests.test_quote_batches import (  # noqa: F401
    test_a_failing_chunk_gives_each_symbol_its_stale_value_or_its_503,
    test_cold_symbols_in_one_batch_cost_one_upstream_call,
    test_hot_quotes_near_expiry_ride_along_and_a_hit_never_waits,
    test_overlapping_batches_from_several_processes_fetch_each_symbol_once,
)
from tests.test_quote_single_flight import (  # noqa: F401
    test_64_cold_requests_from_4_processes_make_one_upstream_call,
    test_waiters_give_up_with_the_leaders_failure_not_a_pile_of_calls,
)


@pytest.fixture(scope="session")
def redis_cluster():
    from devtools.doubles.servers import RedisClusterTLS

    cluster = RedisClusterTLS(nodes=3)
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url(redis_cluster, monkeypatch):
    """The cluster, for every fixture and test of this module that asks for Redis."""
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    # 64 threads opening TLS connections at once on a 2-core test machine can take
    # longer than the 0.25 s default to be answered; in a VPC a TLS GET is about 1 ms.
    monkeypatch.setenv("REDIS_TIMEOUT_S", "1.0")
    client = redis_cluster.client()
    client.flushall()
    yield redis_cluster.url
    client.flushall()
    client.close()


@pytest.fixture
def redis_client(redis_cluster):
    client = redis_cluster.client()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def no_refused_command(caplog):
    """A refused command is a defect even when every answer looked right."""
    caplog.set_level(logging.ERROR)
    yield
    refused = [r.getMessage() for r in caplog.records if "REFUSED" in r.getMessage()]
    assert refused == []


def test_the_cluster_is_tls_only_and_refuses_keys_in_two_slots(redis_cluster):
    import redis

    plain = redis.Redis(host="127.0.0.1", port=redis_cluster.ports[0], socket_timeout=1)
    with pytest.raises(redis.ConnectionError):
        plain.ping()  # no plain-text port
    node = redis_cluster.node(redis_cluster.ports[0])
    with pytest.raises(redis.ResponseError, match="same slot|CROSSSLOT"):
        node.mget(["quote:AAPL", "quote:MSFT"])  # what the code sent before its keys shared a slot
    assert node.mget(["{mds}quote:AAPL", "{mds}quote:MSFT"]) == [None, None]


def test_the_shared_budget_counts_across_the_cluster(redis_url):
    from shared.cache import BUDGET_KEY, RedisBudget, connect
    from shared.polygon import BudgetExceeded

    client = connect(redis_url, 1.0, cluster=True)
    a, b = RedisBudget(client, BUDGET_KEY, 3), RedisBudget(client, BUDGET_KEY, 3)
    a.acquire(), b.acquire(), a.acquire()
    with pytest.raises(BudgetExceeded):
        b.acquire()


def test_a_refused_command_is_logged_as_a_defect_and_redis_is_not_taken_for_down(quote_env, caplog, monkeypatch):
    """Keys without the shared hash tag, as before: the cluster refuses the MGET of two
    symbols. The answer still comes (from the vendor), each refusal is logged at ERROR as a
    defect, and Redis is not skipped for the next seconds as if it were down: the next
    request tries it again (and is refused again, and says so again)."""
    import shared.quotes
    from tests.support import fresh_app, local_client

    monkeypatch.setattr(shared.quotes, "SLOT", "")
    for module in fresh_app("quote"):
        with local_client(module, "quote") as client:
            for _ in range(2):
                batch = client.http.get("/api/quote?symbols=AAPL,MSFT")
                assert batch.status_code == 200
                assert {r["cache"]["status"] for r in json.loads(batch.body)["results"]} == {"bypass"}
    refused = [r for r in caplog.records if "REFUSED" in r.getMessage()]
    assert len(refused) >= 2 and all(r.levelno == logging.ERROR for r in refused)
    assert any("slot" in r.getMessage().lower() or "CROSSSLOT" in r.getMessage() for r in refused)
    caplog.clear()  # seen and asserted: not a failure of this test
