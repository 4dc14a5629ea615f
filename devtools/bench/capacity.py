"""Load: N Lambda instances (processes) for a few seconds each, up to the knee."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from devtools.bench.backtest import load_synthetic_history
from devtools.bench.common import api_event, percentile, verdict
from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars

LOAD_LEVELS = (1, 2, 4, 8, 16)


def bench_load(redis_url: str, fake: FakePolygon, pg_url: str, seconds: float = 3.0) -> dict:
    """Each read path's Lambda handler from N concurrent processes (one request at a
    time each, as Lambda runs them), against the local Redis, PostgreSQL and lake."""
    import redis

    from devtools.doubles.servers import DynaliteServer, MotoServer, ThrowawayDatabase

    print(
        f"\n== load: N Lambda instances of each read path, {seconds:.0f} s a level, this machine's {os.cpu_count()} cores =="
    )
    raw = redis.Redis.from_url(redis_url)
    moto = MotoServer()
    dynalite = DynaliteServer()
    figures: dict = {}
    try:
        with ThrowawayDatabase(pg_url, "mds_bench_load") as db_url:
            env, paths = _load_world(redis_url, fake, db_url, moto, dynalite)
            rig = LoadRig(raw, fake, env, _other_processes(dynalite), seconds)
            for label, service, event, vary in paths:
                print(f"{label}:")
                rows = [_load_level(rig, label, service, event, vary, n) for n in LOAD_LEVELS]
                fake.delay_s = 0.0
                figures[label] = _knee(rows)
    finally:
        dynalite.stop()
        moto.stop()
    out = Path(__file__).resolve().parents[2] / "build" / "load.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    return figures


def _load_world(redis_url: str, fake: FakePolygon, db_url: str, moto, dynalite) -> tuple[dict, list[tuple]]:
    """30 years of one symbol in the lake and PostgreSQL, 20 rules in dynalite; the
    functions' environment and the read paths: (label, service, event, what varies)."""
    import boto3

    from alerts.chalicelib.cli import create_table
    from alerts.chalicelib.store import AlertStore, to_dynamo
    from backtest.chalicelib.lake import Lake, open_store
    from devtools.bench import coldstart

    moto.client("s3").create_bucket(Bucket="load-lake")
    bars = synthetic_bars("SYN", date(1995, 1, 2), 7827, 30.0)
    as_of = bars[-1].day
    since = date(as_of.year - 5, as_of.month, as_of.day)
    load_synthetic_history(["LOAD"], bars, db_url, Lake(open_store("s3://load-lake/h", moto.url)), since)
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    create_table(session.client("dynamodb", endpoint_url=dynalite.url), "load-alerts")
    store = AlertStore(session.resource("dynamodb", endpoint_url=dynalite.url).Table("load-alerts"))
    for i in range(20):  # dynalite has no TransactWriteItems: the rules as plain items
        rule = {
            "pk": "USER#loaduser",
            "sk": f"RULE#{i:016x}",
            "type": "rule",
            "id": f"{i:016x}",
            "user": "loaduser",
            "symbol": "AAPL",
            "condition": f"close < sma({i + 5})",
            "frequency": "once_per_bar",
            "enabled": True,
            "armed": True,
            "cycle": 0,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
        store.table.put_item(Item=to_dynamo(store._index_keys(rule)))
    env = {
        **coldstart.clean_env(),
        "STAGE": "dev",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "REDIS_URL": redis_url,
        "POLYGON_BASE_URL": fake.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000000",
        "DATABASE_URL": db_url,
        "LAKE_URI": "s3://load-lake/h",
        "S3_ENDPOINT_URL": moto.url,
        "RECENT_AS_OF": as_of.isoformat(),
        "AWS_ENDPOINT_URL": dynalite.url,
        "ALERTS_TABLE": "load-alerts",
    }
    five_years = {"symbol": "LOAD", "start": since.isoformat(), "end": as_of.isoformat(), "limit": "10000"}
    lake_range = {
        "symbol": "LOAD",
        "start": bars[0].day.isoformat(),
        "end": (since - timedelta(days=1)).isoformat(),
        "limit": "10000",
    }
    paths = [
        ("quote hit", "quote", api_event("/api/quote", {"symbol": "AAPL"}), ""),
        ("quote miss (upstream 20 ms)", "quote", api_event("/api/quote", {"symbol": "AAPL"}), "symbol"),
        ("backtest 5 years daily", "backtest", api_event("/api/backtest", five_years), ""),
        ("backtest 5 years as 34d", "backtest", api_event("/api/backtest", {**five_years, "interval": "34d"}), ""),
        ("lake full history", "backtest", api_event("/api/backtest", lake_range), ""),
        (
            "alerts rule list",
            "alerts",
            coldstart.with_principal(api_event("/api/alerts/rules", {}), "loaduser"),
            "",
        ),
    ]
    return env, paths


def _other_processes(dynalite) -> dict:
    """name -> (its processes, whether their exited children count): the CPU beside the handlers'."""
    from devtools.bench.processes import pids_named

    return {
        "Redis": (lambda: pids_named("redis-server"), False),
        "PostgreSQL": (lambda: pids_named("postgres"), True),
        "dynalite": (lambda: [dynalite._proc.pid], False),
        "moto+fake (bench process)": (lambda: [os.getpid()], False),
    }


@dataclass
class LoadRig:
    """What every level runs against: Redis (flushed before each), the fake vendor, the
    functions' environment, the other processes whose CPU is counted, seconds a level."""

    raw: Any
    fake: FakePolygon
    env: dict
    others: dict
    seconds: float


def _load_level(rig: LoadRig, label: str, service: str, event: dict, vary: str, n: int) -> dict:
    """One level: n processes for ``seconds``; throughput, latency and each part's CPU."""
    from devtools.bench.processes import process_cpu_s, run_load

    raw, fake, env, others, seconds = rig.raw, rig.fake, rig.env, rig.others, rig.seconds

    raw.flushdb()
    fake.any_ticker = True
    fake.delay_s = 0.020 if vary else 0.0
    if label == "quote hit":
        run_load(service, env, event, 1, 0.2)  # caches AAPL
    before = {name: process_cpu_s(find(), kids) for name, (find, kids) in others.items()}
    got = run_load(service, env, event, n, seconds, vary)
    time.sleep(0.3)  # ended backends reaped by their postmaster
    used = {name: (process_cpu_s(find(), kids) - before[name]) / seconds for name, (find, kids) in others.items()}
    lat = got["latencies"]
    rps = got["requests"] / seconds
    row = {
        "n": n,
        "rps": rps,
        "p50_ms": percentile(lat, 0.5) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "errors": got["errors"],
        "cpu": {"handlers": got["handler_cpu_s"] / seconds, **used},
    }
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in row["cpu"].items() if v >= 0.01)
    print(
        f"  N={n:>2}: {rps:7.0f} req/s, p50 {row['p50_ms']:6.2f} ms, p99 {row['p99_ms']:7.2f} ms"
        f"{', errors ' + str(row['errors']) if row['errors'] else ''}; CPU cores: {cpu}"
    )
    return row


def _knee(rows: list[dict]) -> dict:
    """Where adding instances stops adding throughput (or p99 passes 100 ms), and why."""
    knee = next(
        (a for a, b in zip(rows, rows[1:], strict=False) if b["rps"] < a["rps"] * 1.1 or b["p99_ms"] > 100),
        rows[-1],
    )
    busiest = max(knee["cpu"].items(), key=lambda kv: kv[1])
    within = [r for r in rows if r["p99_ms"] <= 100 and not r["errors"]]
    best = max(within, key=lambda r: r["rps"]) if within else None
    met = bool(best) and best["rps"] >= 100
    print(
        f"  knee at N={knee['n']} ({knee['rps']:.0f} req/s): the machine's CPU is the limit there, "
        f"{sum(knee['cpu'].values()):.2f} of {os.cpu_count()} cores busy, most of it {busiest[0]} "
        f"({busiest[1]:.2f}); goal >= 100 req/s at p99 <= 100 ms: {verdict(met)}"
        + (f" ({best['rps']:.0f} req/s at N={best['n']}, p99 {best['p99_ms']:.1f} ms)" if best else "")
    )
    return {"rows": rows, "knee": knee["n"], "best": best}
