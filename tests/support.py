"""Helpers the tests share (fixtures live in conftest.py, and only fixtures)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import random
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from chalice.test import Client

from shared.bars import DailyBar
from shared.observability import NAMESPACE, JsonLines
from tests.apps import ROOT, load_app


@contextlib.contextmanager
def run_lines() -> Iterator[list[dict]]:
    """The JSON lines the code logs meanwhile, as the local formatter writes them
    (the shape Lambda's JSON log format has), parsed; filled in when the block ends."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(json.loads(text) for text in stream.getvalue().splitlines() if text.strip())


def emf_metrics(line: dict) -> dict[str, float]:
    """The metrics CloudWatch would read off a log line in the Embedded Metric Format
    (its ``_aws`` block names them; their values are the line's own fields), checked
    as CloudWatch checks them: each metric's value present and numeric, each dimension a
    string field of the line."""
    directives = line.get("_aws", {}).get("CloudWatchMetrics", [])
    out: dict[str, float] = {}
    for directive in directives:
        assert directive["Namespace"] == NAMESPACE
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(line.get(d), str) and line[d] for d in dimension_set), (dimension_set, line)
        for metric in directive["Metrics"]:
            value = line[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool), (metric, value)
            out[metric["Name"]] = value
    assert not directives or isinstance(line["_aws"]["Timestamp"], int)
    return out


def invoke_scheduled(client, function: str) -> tuple[dict, bool]:
    """Invoke a scheduled function as its EventBridge rule does, through the app's
    middleware: (its report, whether the invocation failed)."""
    from shared.observability import RunFailed

    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[f"arn:aws:events:rule/{function}"]
    )
    try:
        return client.lambda_.invoke(function, event).payload, False
    except RunFailed as failed:
        return failed.report, True


def scheduled_report(client, function: str) -> dict:
    """The report of one scheduled run, whether or not the invocation failed."""
    return invoke_scheduled(client, function)[0]


def pandas_sma(closes, n):
    """The indicators as pandas computes them: the independent reference."""
    import pandas as pd

    return None if len(closes) < n else float(pd.Series(closes).rolling(n).mean().iloc[-1])


def _seeded(series, n: int, alpha: float) -> float:
    import pandas as pd

    seeded = pd.concat([pd.Series([series.iloc[:n].mean()]), series.iloc[n:]], ignore_index=True)
    return float(seeded.ewm(alpha=alpha, adjust=False).mean().iloc[-1])


def pandas_ema(closes, n):
    import pandas as pd

    return None if len(closes) < n else _seeded(pd.Series(closes, dtype=float), n, 2 / (n + 1))


def pandas_rsi(closes, n):
    import pandas as pd

    changes = pd.Series(closes, dtype=float).diff().dropna().reset_index(drop=True)
    if len(changes) < n:
        return None
    gain = _seeded(changes.clip(lower=0), n, 1 / n)
    loss = _seeded((-changes).clip(lower=0), n, 1 / n)
    if loss == 0:
        return 100.0 if gain > 0 else 50.0
    return 100 - 100 / (1 + gain / loss)


def walk(count: int, seed: int = 7, start: float = 50.0) -> list[DailyBar]:
    """A random walk of daily bars, the same for the same seed."""
    rng = random.Random(seed)
    day, price, out = date(2000, 1, 3), start, []
    for _ in range(count):
        price = max(0.5, price * math.exp(rng.gauss(0, 0.02)))
        out.append(DailyBar(day, price, price * 1.01, price * 0.99, price, 1000.0))
        day += timedelta(days=1)
    return out


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


# The recent window for tests: 2019-12-31 .. 2024-12-31 in PostgreSQL, older in the lake.
RECENT_AS_OF = "2024-12-31"


HISTORY_START = date(2015, 1, 1)


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
        from tests.support import invoke_scheduled

        planned, failed = invoke_scheduled(client, "alerts-check")
        if failed or not planned.get("check") or planned.get("completed"):
            return planned
        checks = load_app("alerts").runtime.checks

        def completed() -> bool:
            record = checks.get(planned["check"])
            return bool(record) and record.get("status") == "completed"

        # No long poll: a check's last empty receive would otherwise wait a second, every check.
        invoke = lambda e: client.lambda_.invoke("alerts-worker", e).payload  # noqa: E731
        source = EventSource(self.sqs, self.work_queue, invoke, wait_s=0)
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


# Figures tests report, printed at the end of the run (conftest's pytest_terminal_summary).
SUMMARY: dict[str, list[str]] = {}


def fresh_app(service: str):
    """The service's app module with its clients rebuilt from the current environment."""
    module = load_app(service)
    module.runtime.reset()
    yield module
    module.runtime.reset()


def local_client(module, service: str) -> Client:
    """Chalice's test client on the ``local`` stage, whose config sets nothing the tests set."""
    return Client(module.app, stage_name="dev", project_dir=str(ROOT / service))


def lake_settings(kind: str, moto, tmp_dir) -> tuple[dict, object]:
    """Environment for a lake of ``kind`` ("file" or "s3"), and what to clean up."""
    if kind == "s3":
        bucket = Bucket(moto)
        return {"LAKE_URI": f"s3://{bucket.name}/market", "S3_ENDPOINT_URL": moto.url}, bucket.delete
    return {"LAKE_URI": f"file://{tmp_dir}/lake", "S3_ENDPOINT_URL": ""}, lambda: None


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
