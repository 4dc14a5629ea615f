"""``make bench --only alerts``: the check fanned out, at 10,000, 100,000 and 1,000,000
rules over 10,000 symbols and 100,000 users.

DynamoDB is dynalite (moto answers large index reads ~10x slower than DynamoDB), SNS
and SQS are moto's, PostgreSQL and Redis real, the vendor the fake. The planner runs
here; the workers are ``devtools.doubles.sqs_poller`` processes (1 or 2: this machine has two
cores) running the ``alerts-worker`` handler as Lambda's event source would. Each run
is a check of its own day (fresh firing ids), so runs are comparable; 10% of the rules
fire.

dynalite is one Node.js process answering one request at a time (~450 a second here):
end to end, a check here measures dynalite. So the figures are taken apart: whole
checks at 10,000 and 100,000 rules (1 and 2 workers), the requests a check makes per
rule (counted through a proxy), the CPU a worker spends per rule (evaluation alone, no
I/O), and at a million rules the plan and single shards; the projection for AWS puts
them together with DynamoDB's latency (a stated assumption) and Lambda's SQS scaling.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

LEVELS = (10_000, 100_000, 1_000_000)
SYMBOLS = 10_000
USERS = 100_000
FIRING = ("rsi(14) > 0", "close > 0 and ema(50) > 0", "price > 0 and sma(20) > 0")
QUIET = (
    "rsi(14) < 3",
    "close < 0.001",
    "price > 1000000",
    "close crosses above sma(20) and rsi(14) > 99",
    "ema(200) > 1000000",
    "change_pct <= -60",
)
LOAD_BUDGET_S = 900
# Whole checks are run up to this many rules; above it, the plan and a few shards.
WHOLE_CHECKS_UP_TO = 100_000
DEPLOYED_WORKERS = 50
# The model's assumptions for AWS: a DynamoDB request's latency in-region (single-digit
# milliseconds, as DynamoDB documents), an SNS publish's, and the threads a worker runs.
DYNAMODB_MS = 6.0
SNS_MS = 15.0
WORKER_THREADS = 8
STATES_AS_OF = date(2026, 11, 20)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def symbol_names() -> list[str]:
    return [f"S{i:04d}" for i in range(SYMBOLS)]


def write_states(database_url: str, symbols: list[str]) -> None:
    """Every symbol's indicator state: twenty computed walks, scaled (the recursions are
    linear in the price), as the daily update keeps them."""
    from backtest.chalicelib.indicator_states import compute, write_states
    from devtools.local.sample_data import synthetic_bars
    from shared import postgres

    bases = []
    for k in range(20):
        bars = synthetic_bars(f"B{k}", STATES_AS_OF - timedelta(days=1500), 1000, 20.0 + k)
        bars = [b._replace(day=STATES_AS_OF - timedelta(days=len(bars) - 1 - i)) for i, b in enumerate(bars)]
        bases.append(compute(f"B{k}", bars, "raw|1|"))
    states = []
    for i, symbol in enumerate(symbols):
        base, scale = bases[i % 20], 1 + (i % 97) / 50
        states.append(
            base.__class__(
                symbol,
                base.day,
                base.count,
                tuple(c * scale for c in base.closes),
                tuple(
                    b.__class__(b.day, b.open * scale, b.high * scale, b.low * scale, b.close * scale, b.volume)
                    for b in base.bars
                ),
                tuple(v * scale for v in base.ema),
                tuple(v * scale for v in base.gain),
                tuple(v * scale for v in base.loss),
                base.splits,
            )
        )
    conn = postgres.connect(database_url, 60)
    postgres.migrate(conn)
    conn.run("BEGIN")
    write_states(conn, states)
    conn.run("COMMIT")
    conn.close()


def rules_between(start: int, end: int, symbols: list[str]):
    """Rules ``start`` to ``end``: skewed to popular symbols (the first has ~1%), ten per
    user at a million, 10% that hold now, 30% on the live price."""
    rng = random.Random(start)
    for i in range(start, end):
        symbol = symbols[min(SYMBOLS - 1, int(SYMBOLS * rng.random() ** 2))]
        pool = FIRING if i % 10 == 0 else QUIET
        condition = pool[i % len(pool)]
        user = f"u{i % USERS:06d}"
        rule_id = f"{i:016x}"
        yield {
            "pk": f"USER#{user}",
            "sk": f"RULE#{rule_id}",
            "type": "rule",
            "id": rule_id,
            "user": user,
            "symbol": symbol,
            "condition": condition,
            "frequency": "once_per_bar",
            "enabled": True,
            "armed": True,
            "cycle": 0,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "gsi1pk": f"ENABLED#{symbol}",
            "gsi1sk": rule_id,
        }


def load(table, items, threads: int = 8) -> None:
    """Items in BatchWriteItem calls of 25, from a few threads (unprocessed ones again)."""
    from alerts.chalicelib.store import to_dynamo

    client = table.meta.client
    chunks, chunk = [], []
    for item in items:
        chunk.append({"PutRequest": {"Item": to_dynamo(item)}})
        if len(chunk) == 25:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)

    def write(requests):
        while requests:
            left = client.batch_write_item(RequestItems={table.name: requests}).get("UnprocessedItems", {})
            requests = left.get(table.name, [])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, chunks))


def registry(table, counts: dict[str, list[int]]) -> None:
    from alerts.chalicelib.store import registry_key

    load(table, ({**registry_key(s), "symbol": s, "rules": r, "quoted": q} for s, (r, q) in counts.items()))


class Fanout:
    """The servers, the table, the states and the users, once; then checks at each level."""

    def __init__(self, redis_url: str, fake, pg_url: str):
        import boto3
        from botocore.config import Config

        from alerts.chalicelib.cli import create_table
        from devtools.doubles.servers import DynaliteServer, MotoServer, ThrowawayDatabase
        from devtools.doubles.sqs_poller import create_work_queue

        self.fake = fake
        self.moto = MotoServer()
        self.dynalite = DynaliteServer()
        self.database = ThrowawayDatabase(pg_url, "mds_bench_fanout")
        self.db_url = self.database.__enter__()
        session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
        config = Config(connect_timeout=2, read_timeout=60, retries={"max_attempts": 6, "mode": "standard"})
        create_table(session.client("dynamodb", endpoint_url=self.dynalite.url), "bench-fanout")
        self.table = session.resource("dynamodb", endpoint_url=self.dynalite.url, config=config).Table("bench-fanout")
        sqs, sns = self.moto.client("sqs"), self.moto.client("sns")
        self.topic, self.queue, _ = create_work_queue(sqs, sns, "bench-fanout-work", visibility_s=30)
        user_topic = sns.create_topic(Name="bench-fanout-user-all")["TopicArn"]
        self.symbols = symbol_names()
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "POLYGON_BASE_URL": fake.url,
            "POLYGON_MAX_CALLS_PER_MIN": "100000",
            "DATABASE_URL": self.db_url,
            "ALERTS_TABLE": "bench-fanout",
            "ALERTS_TOPIC_PREFIX": "bench-fanout-user-",
            "ALERTS_WORK_TOPIC_ARN": self.topic,
            "ALERTS_WORK_QUEUE_URL": self.queue,
            "AWS_ENDPOINT_URL": self.moto.url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynalite.url,
            "AWS_READ_TIMEOUT_S": "60",
            "AWS_MAX_ATTEMPTS": "6",
            "ALERTS_IGNORE_MARKET_HOURS": "1",
            "RECENT_AS_OF": STATES_AS_OF.isoformat(),
            "COGNITO_USER_POOL_ID": "us-east-1_bench",
            "COGNITO_CLIENT_ID": "bench",
            "LOG_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
        }
        t0 = time.perf_counter()
        write_states(self.db_url, self.symbols)
        from devtools.bench.traces import list_symbols

        list_symbols(fake, self.symbols)
        # Every user has a channel (one topic for all here: SNS's work per message is the same).
        meta = (
            {"pk": f"USER#u{u:06d}", "sk": "META", "topic_arn": user_topic, "channel_count": 1, "webhook_secret": "x"}
            for u in range(USERS)
        )
        load(self.table, meta)
        print(f"setup: {SYMBOLS:,} indicator states, {USERS:,} users with a channel in {time.perf_counter() - t0:.0f}s")
        self.loaded = 0
        self.counts: dict[str, list[int]] = {}
        self.day = date(2026, 12, 7)

    def grow(self, level: int) -> float:
        """Rules up to ``level`` and their registry: the seconds it took."""
        from alerts.chalicelib.condition import parse

        t0 = time.perf_counter()
        new = list(rules_between(self.loaded, level, self.symbols))
        load(self.table, new)
        for rule in new:
            entry = self.counts.setdefault(rule["symbol"], [0, 0])
            entry[0] += 1
            entry[1] += int(parse(rule["condition"]).needs_quote())
        registry(self.table, self.counts)
        self.loaded = level
        return time.perf_counter() - t0

    def check(self, workers: int, env_overrides: dict | None = None) -> dict:
        """One check on a day of its own: the planner here, ``workers`` worker processes."""
        from alerts.chalicelib.checks import CheckReport
        from alerts.chalicelib.planner import plan_check
        from alerts.chalicelib.runtime import AlertsRuntime

        self.day += timedelta(days=1)
        while self.day.weekday() >= 5:
            self.day += timedelta(days=1)
        env = {**self.env, **(env_overrides or {})}
        runtime = AlertsRuntime(env)
        self.fake.reset_calls()
        tick = datetime.combine(self.day, datetime.min.time(), UTC) + timedelta(hours=15)
        log = open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "a")  # noqa: SIM115 - closed with the pool
        pool = subprocess.Popen(
            [sys.executable, "-m", "devtools.doubles.sqs_poller", "--workers", str(workers)],
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=log,
        )
        try:
            time.sleep(3)  # the workers imported and polling, as warm Lambda containers
            t0 = time.perf_counter()
            plan = plan_check(
                runtime.alert_store, runtime.checks, runtime.quotes, runtime.work_queue, runtime.settings, now=tick
            )
            planned = time.perf_counter() - t0
            vendor_calls = self.fake.count()
            record = {}
            while time.perf_counter() - t0 < 3600:
                record = runtime.checks.get(plan.check) or {}
                if record.get("status") == "completed":
                    break
                time.sleep(0.5)
            wall = time.perf_counter() - t0
        finally:
            os.killpg(pool.pid, 9)
            pool.wait()
            log.close()
        report = CheckReport.of(record)
        return {
            "wall": wall,
            "planned": planned,
            "shards": plan.shards,
            "symbols": plan.symbols,
            "quoted": report.counts["quoted"],
            "vendor_calls": vendor_calls,
            "report": report,
            "completed": report.completed,
        }

    def close(self) -> None:
        self.dynalite.stop()
        self.moto.stop()
        self.database.__exit__(None, None, None)


def counted_check(fanout: Fanout) -> None:
    """One check at the current level with the workers' DynamoDB behind a counting proxy and
    PostgreSQL's transaction count read before and after."""
    from devtools.doubles.fault_proxy import FaultProxy
    from shared import postgres

    proxy = FaultProxy(fanout.dynalite.url)
    operations = ("Query", "GetItem", "PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem")
    counters = {op: proxy.fail(f"DynamoDB_20120810.{op}") for op in operations}

    def state_reads():
        """(index lookups, rows) on the states table (an ``= ANY(...)`` query counts a lookup
        a key; the one query a shard is tests/test_alerts_check.py's)."""
        conn = postgres.connect(fanout.db_url, 10)
        rows = conn.run(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0), coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_user_tables WHERE relname = 'indicator_states'"
        )
        conn.close()
        return rows[0]

    time.sleep(1)  # the statistics collector's last report in
    before = state_reads()
    run = fanout.check(2, {"AWS_ENDPOINT_URL_DYNAMODB": proxy.url})
    time.sleep(1)
    after = state_reads()
    proxy.stop()
    counts = {op: c.hits for op, c in counters.items() if c.hits}
    report = run["report"]
    lookups, rows = after[0] - before[0], after[1] - before[1]
    print(
        f"  work per check at {fanout.loaded:,} rules ({run['shards']} shards, {run['symbols']:,} symbols, "
        f"{report.counts['checked']:,} checked, {report.counts['fired']:,} fired): DynamoDB {sum(counts.values()):,} "
        f"requests {counts} ({sum(counts.values()) / max(1, report.counts['checked']):.2f} a rule); PostgreSQL: "
        f"{rows:,} state rows by {lookups:,} index lookups for {run['symbols']:,} symbols, in one query a shard "
        f"(goal one read per symbol: {verdict(rows <= run['symbols'] and lookups <= run['symbols'])})"
    )
    return sum(counts.values()) / max(1, report.counts["checked"]), counts


def evaluation_rate(fanout: Fanout, rules: int = 20_000) -> float:
    """Rules a worker evaluates a CPU-second, I/O aside: states and quotes in memory."""
    from alerts.chalicelib.condition import parse
    from alerts.chalicelib.evaluation import Evaluation
    from shared import postgres

    conn = postgres.connect(fanout.db_url, 30)
    states = postgres.read_states(conn, fanout.symbols)
    conn.close()
    sample = list(rules_between(0, rules, fanout.symbols))
    quote = {"price": 25.0, "as_of": "2026-11-23T15:00:00Z", "change_pct": 1.0}
    started = time.process_time()
    evaluations: dict = {}
    for rule in sample:
        condition = parse(rule["condition"])
        live = condition.needs_quote()
        evaluation = evaluations.get(rule["symbol"])
        if evaluation is None:
            evaluation = evaluations[rule["symbol"]] = Evaluation(states.get(rule["symbol"]), quote)
        try:
            condition.evaluate(lambda op, p, e=evaluation, lv=live: e.value(op, p, lv))
        except Exception:  # noqa: BLE001, S112 - a rule short of history: skipped as the worker does
            continue
    return rules / max(1e-9, time.process_time() - started)


def shards_at_scale(fanout: Fanout, shards: int = 3) -> list[float]:
    """Plan a check at the current level, then work ``shards`` of its shards here (the
    worker's code, in this process) and drop the rest: seconds a shard."""
    from alerts.chalicelib.planner import plan_check
    from alerts.chalicelib.runtime import AlertsRuntime
    from alerts.chalicelib.worker import handle_batch

    runtime = AlertsRuntime(fanout.env)
    fanout.day += timedelta(days=1)
    tick = datetime.combine(fanout.day, datetime.min.time(), UTC) + timedelta(hours=15)
    fanout.fake.reset_calls()
    t0 = time.perf_counter()
    plan = plan_check(
        runtime.alert_store, runtime.checks, runtime.quotes, runtime.work_queue, runtime.settings, now=tick
    )
    planned = time.perf_counter() - t0
    vendor_calls = fanout.fake.count()
    sqs = fanout.moto.client("sqs")
    seconds = []
    taken = 0
    while taken < shards:
        got = sqs.receive_message(QueueUrl=fanout.queue, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
        if not got:
            break
        record = {"messageId": got[0]["MessageId"], "body": got[0]["Body"]}
        t1 = time.perf_counter()
        handle_batch(
            [record],
            runtime.alert_store,
            runtime.checks,
            runtime.database,
            runtime.publisher,
            runtime.work_queue,
            runtime.settings,
        )
        seconds.append(time.perf_counter() - t1)
        taken += 1
    sqs.purge_queue(QueueUrl=fanout.queue)
    print(
        f"{fanout.loaded:,} rules: plan {planned:.1f}s ({plan.symbols:,} symbols in {plan.shards} shards; vendor calls "
        f"{vendor_calls} for the quoted symbols, goal <= ceil(n/250): "
        f"{verdict(vendor_calls <= math.ceil(plan.symbols / 250))}); {len(seconds)} shards worked here: "
        f"{', '.join(f'{x:.1f}s' for x in seconds)} (dynalite-bound)"
    )
    return seconds


def bench_alerts(redis_url: str, fake, pg_url: str, levels=LEVELS) -> None:
    print(f"\n== alerts check, fanned out (dynalite, moto's SNS and SQS; {SYMBOLS:,} symbols, {USERS:,} users) ==")
    fanout = Fanout(redis_url, fake, pg_url)
    requests_per_rule, counts = None, {}
    try:
        cpu_rate = evaluation_rate(fanout)
        print(f"evaluation alone (states and quotes in memory): {cpu_rate:,.0f} rules a CPU-second")
        for level in levels:
            took = fanout.grow(level)
            print(f"{level:,} rules loaded in {took:.0f}s")
            if level > WHOLE_CHECKS_UP_TO:
                shards_at_scale(fanout)
                continue
            runs = {w: fanout.check(w) for w in (1, 2)}
            for workers, run in runs.items():
                report = run["report"]
                print(
                    f"{level:,} rules, {workers} worker(s): tick to last firing delivered {run['wall']:.1f}s "
                    f"(plan {run['planned']:.1f}s: {run['shards']} shards); checked {report.counts['checked']:,}, "
                    f"fired {report.counts['fired']:,} in {report.counts['messages']:,} messages (failed "
                    f"{report.counts['failed']}, delivery failed {report.counts['delivery_failed']}, skipped "
                    f"{report.counts['skipped']} {dict(report.reasons)}); vendor calls "
                    f"{run['vendor_calls']} for {run['quoted']:,} quoted symbols (goal <= ceil(n/250) = "
                    f"{math.ceil(run['quoted'] / 250)}: {verdict(run['vendor_calls'] <= math.ceil(run['quoted'] / 250))}); "
                    f"completed: {run['completed']}"
                )
            one, two = (runs[w]["wall"] - runs[w]["planned"] for w in (1, 2))
            print(
                f"  1 -> 2 workers: {one:.1f}s -> {two:.1f}s ({one / max(two, 1e-6):.2f}x; dynalite, one process, is the bound)"
            )
            if requests_per_rule is None:
                requests_per_rule, counts = counted_check(fanout)
        project(cpu_rate, requests_per_rule or 1.3, counts)
    finally:
        fanout.close()


def project(cpu_rate: float, requests_per_rule: float, counts: dict) -> None:
    """The deployed check at a million rules: the model, in numbers."""
    per_rule_s = 1 / cpu_rate + requests_per_rule * DYNAMODB_MS / 1000 / WORKER_THREADS
    rate = 1 / per_rule_s
    # Lambda's SQS event source starts at 5 concurrent batches and adds up to 300 a minute;
    # MaximumConcurrency caps it at DEPLOYED_WORKERS (each holds a PostgreSQL connection).
    done, t = 0.0, 0
    while done < 1_000_000 and t < 3600:
        done += min(DEPLOYED_WORKERS, 5 + 5 * t) * rate
        t += 1
    publish = 100_000 * SNS_MS / 1000 / (DEPLOYED_WORKERS * WORKER_THREADS)
    print(
        f"projection at 1,000,000 rules (200 shards of 5,000; 10% firing: 100,000 messages): a worker does "
        f"{rate:,.0f} rules a second ({1000 / cpu_rate:.3f} ms of CPU and {requests_per_rule:.2f} DynamoDB requests "
        f"a rule at {DYNAMODB_MS:g} ms over {WORKER_THREADS} threads); Lambda's SQS scaling (5 at once, +300 a "
        f"minute, at most {DEPLOYED_WORKERS}) finishes the rules ~{t}s after the tick and the messages (SNS "
        f"{SNS_MS:g} ms a publish) in ~{publish:.0f}s more: ~{t + publish:.0f}s (goal 60 s: {verdict(t + publish <= 60)})"
    )
