"""Cold starts: each packaged zip imported by a fresh process, against bare Python."""

from __future__ import annotations

import json
from datetime import date, timedelta

from devtools.bench.backtest import load_synthetic_history
from devtools.bench.common import api_event, ms, verdict
from devtools.bench.traces import list_symbols
from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars


def bench_cold(redis_url: str, fake: FakePolygon, pg_url: str, runs: int = 5) -> None:
    """Cold starts of each function from its packaged zip (see devtools/bench/coldstart.py)."""
    from devtools.bench import coldstart
    from devtools.doubles.servers import MotoServer, ThrowawayDatabase
    from devtools.doubles.token_issuer import TokenIssuer
    from devtools.release.packaging import check

    print("\n== cold starts (packaged zip, bare Python 3.12 with boto3, fresh process each) ==")
    python = coldstart.bare_python()
    folders = {}
    for service in ("quote", "backtest", "alerts"):
        report = check(service, coldstart.WORK / f"pkg-{service}", "aws-prod")
        folders[service] = coldstart.unpack(report.zip_path, service)
    moto = MotoServer()
    # The authorizer of an AWS stage trusts no moto token: a pool's key of its own, served on loopback.
    issuer = TokenIssuer("us-east-1_ColdPool", "cold-client")
    try:
        with ThrowawayDatabase(pg_url, "mds_bench_cold") as db_url:
            world = _cold_world(redis_url, fake, db_url, moto, issuer, runs)
            print(f"{runs} fresh processes each; medians; the goal counts import app + the first answered request")
            for label, service, handler, event, goal in _scenarios(world, issuer):
                results = [
                    coldstart.cold_request(python, folders[service], world["env"], event(i), handler)
                    for i in range(runs)
                ]
                _report(label, results, goal)
    finally:
        issuer.stop()
        moto.stop()


def _cold_world(redis_url: str, fake: FakePolygon, db_url: str, moto, issuer, runs: int) -> dict:
    """A lake and database with 30 years of one symbol, a table, a cached quote, and the
    environment an AWS stage's function would have."""
    from alerts.chalicelib.cli import create_table
    from backtest.chalicelib.lake import Lake, open_store
    from devtools.bench import coldstart
    from shared.cache import connect
    from shared.config import Settings
    from shared.polygon import PolygonGateway, make_client
    from shared.quotes import QuoteService

    moto.client("s3").create_bucket(Bucket="cold-lake")
    create_table(moto.client("dynamodb"), "cold-alerts")
    bars = synthetic_bars("SYN", date(1995, 1, 2), 7827, 30.0)
    as_of = bars[-1].day
    since = date(as_of.year - 5, as_of.month, as_of.day)
    load_synthetic_history(["COLD"], bars, db_url, Lake(open_store("s3://cold-lake/h", moto.url)), since)
    list_symbols(fake, ["AAPL"] + [f"K{i}" for i in range(runs)])
    env = {
        **coldstart.clean_env(),
        "AWS_LAMBDA_FUNCTION_NAME": "cold",  # as in Lambda: no local defaults
        "STAGE": "aws-dev",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "REDIS_URL": redis_url,
        "POLYGON_BASE_URL": fake.url,
        "POLYGON_API_KEY": "cold",
        "POLYGON_MAX_CALLS_PER_MIN": "100000",
        "DATABASE_URL": db_url,
        "LAKE_URI": "s3://cold-lake/h",
        "S3_ENDPOINT_URL": moto.url,
        "CURSOR_SECRET": "cold",
        "RECENT_AS_OF": as_of.isoformat(),
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": issuer.endpoint_url,
        "ALERTS_TABLE": "cold-alerts",
        "ALERTS_TOPIC_PREFIX": "cold-user-",
        "COGNITO_USER_POOL_ID": issuer.pool_id,
        "COGNITO_CLIENT_ID": issuer.client_id,
    }
    settings = Settings.from_env(env)
    warm = QuoteService(settings, connect(redis_url, 1.0), PolygonGateway(make_client(settings)))
    warm.get("AAPL")  # the hit case: cached, as a quote usually is
    return {"env": env, "as_of": as_of, "since": since}


def _scenarios(world: dict, issuer) -> list[tuple]:
    """(label, service, handler, event for run i, goal in seconds or None)."""
    from alerts.chalicelib.work import Shard, to_body
    from devtools.bench import coldstart

    as_of, since = world["as_of"], world["since"]
    token = issuer.token("11111111-2222-3333-4444-555555555555")
    lake_range = {"symbol": "COLD", "start": "1995-01-01", "end": (since - timedelta(days=1)).isoformat()}
    recent = {"symbol": "COLD", "start": (as_of - timedelta(days=365)).isoformat(), "end": as_of.isoformat()}
    rule = {"symbol": "AAPL", "condition": "close < sma(50)"}
    shard_body = to_body(Shard("cold", 0, as_of.isoformat(), as_of.isoformat(), ["AAPL"]))
    post = api_event("/api/alerts/rules", {})
    post.update(httpMethod="POST", body=json.dumps(rule))
    post["requestContext"]["httpMethod"] = "POST"
    post["headers"]["Content-Type"] = "application/json"
    return [
        ("quote API, a cached quote", "quote", "app", lambda i: api_event("/api/quote", {"symbol": "AAPL"}), 0.250),
        ("quote API, an uncached quote", "quote", "app", lambda i: api_event("/api/quote", {"symbol": f"K{i}"}), None),
        (
            "backtest API, full history from the lake",
            "backtest",
            "app",
            lambda i: api_event("/api/backtest", {**lake_range, "limit": "10000"}),
            0.600,
        ),
        ("backtest API, a year from PostgreSQL", "backtest", "app", lambda i: api_event("/api/backtest", recent), None),
        (
            "alerts API, list rules",
            "alerts",
            "app",
            lambda i: coldstart.with_principal(api_event("/api/alerts/rules", {}), "demo"),
            0.250,
        ),
        (
            "alerts API, create a rule (parses it)",
            "alerts",
            "app",
            lambda i: coldstart.with_principal(post, "demo"),
            None,
        ),
        (
            "alerts worker, a shard of one symbol (its rules, its state: DynamoDB and PostgreSQL)",
            "alerts",
            "alerts_worker",
            lambda i: coldstart.sqs_event(shard_body),
            0.250,
        ),
        (
            "alerts authorizer, a valid token (the key set fetched on first use)",
            "alerts",
            "bearer_token",
            lambda i: coldstart.authorizer_event(token),
            None,
        ),
    ]


def _report(label: str, results: list[dict], goal: float | None) -> None:
    from devtools.bench import coldstart

    statuses = {r["status"] for r in results}
    imp = coldstart.median([r["import_s"] for r in results])
    first = coldstart.median([r["first_s"] for r in results])
    total = coldstart.median([r["import_s"] + r["first_s"] for r in results])
    verdict_text = f"; goal <= {goal * 1000:.0f} ms: {verdict(total <= goal)}" if goal else ""
    print(
        f"  {label}: import app {ms(imp)}, first request {ms(first)}, together {ms(total)} "
        f"(answers {sorted(map(str, statuses))}){verdict_text}"
    )
