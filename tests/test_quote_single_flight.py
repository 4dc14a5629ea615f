"""Cold misses for one symbol from several processes make exactly one upstream call."""

from __future__ import annotations

from collections import Counter

from devtools.bench.processes import concurrent_cold_requests


def test_64_cold_requests_from_4_processes_make_one_upstream_call(redis_url, fake_polygon):
    fake_polygon.delay_s = 0.3  # long enough that every request arrives while the first is in flight
    env = {"REDIS_URL": redis_url, "POLYGON_BASE_URL": fake_polygon.url, "POLYGON_MAX_CALLS_PER_MIN": "1000"}
    statuses = concurrent_cold_requests(env, "MSFT", processes=4, threads=16)
    assert len(statuses) == 64
    assert fake_polygon.count("MSFT") == 1
    counts = Counter(statuses)
    assert set(counts) <= {"miss", "hit"}, counts
    assert counts["miss"] >= 1


def test_waiters_give_up_with_the_leaders_failure_not_a_pile_of_calls(redis_url, fake_polygon):
    fake_polygon.delay_s = 0.3
    fake_polygon.set_fault("IBM", status=500)
    env = {
        "REDIS_URL": redis_url,
        "POLYGON_BASE_URL": fake_polygon.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        "POLYGON_RETRIES": "0",
    }
    statuses = concurrent_cold_requests(env, "IBM", processes=2, threads=8)
    assert Counter(statuses) == {"error:upstream_unavailable": 16}
    assert fake_polygon.count("IBM") == 1
