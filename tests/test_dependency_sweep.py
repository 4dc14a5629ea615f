"""No 500 when a dependency fails: every route of every service, and both scheduled
functions, with each of their dependencies in turn unreachable, timing out,
throttling or answering garbage, over real sockets (the fault servers and proxy of
``devtools/doubles/fault_proxy.py``, the fake Polygon's faults), never by mocking a client.

Each answer must be the documented degraded answer (2xx, e.g. a quote straight from
the vendor while Redis is down) or a documented 503 with ``Retry-After`` and a JSON
error naming the dependency's kind, and never its address or a stack trace. A
scheduled run must end with a report that names what failed. The run's count of
cases and of answers by status is printed in the summary.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from devtools.doubles.fake_polygon import FakePolygon
from devtools.doubles.fault_proxy import (
    DYNAMODB_THROTTLE,
    DYNAMODB_THROTTLING,
    JWKS_THROTTLED,
    LAMBDA_THROTTLED,
    S3_SLOW_DOWN,
    SNS_THROTTLED,
    FaultProxy,
    FaultyServer,
    closed_port,
)
from devtools.doubles.sqs_poller import EventSource
from tests.apps import load_app
from tests.support import SUMMARY, AlertsWorld, Bucket, emf_metrics, fresh_app, ingest, local_client, run_lines

FAULTS = ("unreachable", "timeout", "throttled", "garbage")
# What each dependency is, to the clients that use it.
HTTP_DEPENDENCIES = {"s3", "dynamodb", "sns", "cognito", "vendor"}
# Short enough that a hanging dependency costs the sweep about a second a case.
QUICK = {
    "REDIS_TIMEOUT_S": "0.2",
    "DATABASE_TIMEOUT_S": "0.5",
    "POLYGON_CONNECT_TIMEOUT_S": "0.3",
    "POLYGON_READ_TIMEOUT_S": "0.5",
    "POLYGON_RETRIES": "0",
    "AWS_CONNECT_TIMEOUT_S": "0.3",
    "AWS_READ_TIMEOUT_S": "1.0",
    "AWS_MAX_ATTEMPTS": "2",
    "QUOTE_WAIT_S": "0.5",
    # A 429's Retry-After (3 s here) is more than a run may wait: it stops and says so.
    "INGEST_MAX_WAIT_S": "2",
}
REPORT: Counter = Counter()
OUTCOMES: Counter = Counter()


class Faults:
    """One server of each misbehaviour, and the proxies in front of moto, for the sweep."""

    def __init__(self, moto):
        self.hang = FaultyServer("hang")
        self.garbage = FaultyServer("garbage")
        self.http_garbage = FaultyServer("garbage", http=True)
        self.proxy = FaultProxy(moto.url)

    def url(self, kind: str, scheme: str = "http", path: str = "") -> str:
        port = {
            "unreachable": closed_port(),
            "timeout": self.hang.port,
            "garbage": (self.http_garbage if scheme == "http" else self.garbage).port,
        }[kind]
        return f"{scheme}://127.0.0.1:{port}{path}"

    def stop(self) -> None:
        for server in (self.hang, self.garbage, self.http_garbage):
            server.stop()
        self.proxy.stop()


@pytest.fixture(scope="module")
def faults(moto_server):
    f = Faults(moto_server)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def vendor(history_bars):
    """The sweep's own fake Polygon: the history, one session more of HIST for the daily
    update to fill, and ALRT for the alerts check's quotes."""
    from devtools.local.sample_data import synthetic_bars
    from shared.bars import DailyBar
    from shared.market_calendar import sessions_between

    hist = history_bars["HIST"]
    following = sessions_between(hist[-1].day + timedelta(days=1), hist[-1].day + timedelta(days=10))[0]
    last = hist[-1]
    bars = {
        **history_bars,
        "HIST": [*hist, DailyBar(following, last.close, last.close * 1.01, last.close * 0.99, last.close, 1000.0)],
        "ALRT": synthetic_bars("ALRT", date(2024, 6, 3), 150, 30.0),
    }
    fake = FakePolygon(bars, page_size=700).start()
    fake.following_session = following
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def sweep_world(pg_server_url, moto_server, vendor, redis_server_url, faults):
    """History in PostgreSQL and a lake on moto's S3, an alerts world (table, user pool,
    users with rules and channels), a Redis database: all healthy."""
    from devtools.doubles.servers import ThrowawayDatabase

    base = redis_server_url.rsplit("/", 1)[0] if redis_server_url.rsplit("/", 1)[-1].isdigit() else redis_server_url
    with ThrowawayDatabase(pg_server_url) as db_url, pytest.MonkeyPatch.context() as mp:
        bucket = Bucket(moto_server)
        alerts = AlertsWorld(moto_server, db_url)
        env = {
            **alerts.env(),
            **QUICK,
            "DATABASE_URL": db_url,
            "REDIS_URL": f"{base}/11",
            "LAKE_URI": f"s3://{bucket.name}/market",
            "S3_ENDPOINT_URL": moto_server.url,
            "AWS_ENDPOINT_URL": moto_server.url,
            # History is current as of the day its stored part ends (the day before the one
            # the fake holds more): the check evaluates, the daily update has one session to fill.
            "RECENT_AS_OF": (vendor.following_session - timedelta(days=1)).isoformat(),
            "RECENT_YEARS": "5",
            "POLYGON_BASE_URL": vendor.url,
            "POLYGON_MAX_CALLS_PER_MIN": "100000",
        }
        for name, value in env.items():
            mp.setenv(name, value)
        # Through the day before the session the fake holds one more of, for the daily update.
        through = (vendor.following_session - timedelta(days=1)).isoformat()
        assert ingest(["--symbols", "HIST,OLD", "--from", "2000-01-01", "--to", through]) == 0
        alerts.load_bars("ALRT", [50 - i for i in range(30)], vendor.following_session - timedelta(days=1))
        yield env, alerts
        alerts.close()
        bucket.delete()


def fault_env(dependency: str, kind: str, env: dict, faults: Faults, fake) -> dict:
    """The environment that makes ``dependency`` fail as ``kind``; None when that kind
    does not apply to it (Redis and PostgreSQL have no throttling answer to give)."""
    if dependency == "redis":
        return None if kind == "throttled" else {"REDIS_URL": faults.url(kind, "redis", "/0")}
    if dependency == "postgresql":
        return (
            None
            if kind == "throttled"
            else {"DATABASE_URL": faults.url(kind, "postgresql", "/x").replace("//", "//postgres@")}
        )
    if dependency == "vendor":
        return {"POLYGON_BASE_URL": faults.url(kind) if kind in ("unreachable", "timeout") else fake.url}
    if dependency == "relay":
        # The vendor relay (a Lambda function the VPC's functions invoke): down, slow,
        # throttled by Lambda, or answering what is not Lambda's answer.
        lambda_endpoint = faults.proxy.url if kind == "throttled" else faults.url(kind)
        return {"POLYGON_RELAY_FUNCTION": "market-quote-dev-vendor-relay", "AWS_ENDPOINT_URL_LAMBDA": lambda_endpoint}
    variable = {
        "s3": "S3_ENDPOINT_URL",
        "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
        "sns": "AWS_ENDPOINT_URL_SNS",
        "cognito": "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
    }[dependency]
    if kind in ("unreachable", "timeout", "garbage"):
        return {variable: faults.url(kind)}
    return {variable: faults.proxy.url}  # throttled: the proxy answers every request with the throttle


def arm(dependency: str, kind: str, faults: Faults, fake, scheduled: bool = False) -> None:
    """The faults that live in a server rather than in an address. DynamoDB throttles
    with either of its two errors: the routes get one, the scheduled check the other."""
    faults.proxy.clear()
    fake.clear_faults()
    if kind == "throttled":
        dynamodb = DYNAMODB_THROTTLING if scheduled else DYNAMODB_THROTTLE
        canned = {
            "s3": S3_SLOW_DOWN,
            "dynamodb": dynamodb,
            "sns": SNS_THROTTLED,
            "cognito": JWKS_THROTTLED,
            "relay": LAMBDA_THROTTLED,
        }
        if dependency in canned:
            faults.proxy.fail("", canned[dependency])
        if dependency == "vendor":
            fake.set_fault(None, status=429, retry_after=3)
    if dependency == "vendor" and kind == "garbage":
        fake.set_fault(None, garbage=True)


@dataclass
class Case:
    service: str
    label: str
    dependency: str
    fault: str
    # "unavailable": a 503 naming the dependency; "degraded": a 2xx; None: either
    expect: str | None


LEAKS = re.compile(r"127\.0\.0\.1|localhost|Traceback|HTTPConnection|File \"|:\d{4,5}\b")


def check_answer(case: Case, response, doc: dict, path: str, method: str) -> None:
    body_text = response.body.decode(errors="replace") if isinstance(response.body, bytes) else str(response.body)
    status = response.status_code
    OUTCOMES[status] += 1
    assert status != 500 and (status < 500 or status == 503), f"{case}: {status} {body_text[:300]}"
    assert not LEAKS.search(body_text if status >= 400 else ""), f"{case}: the answer leaks: {body_text[:300]}"
    documented = doc["paths"][path][method]["responses"]
    assert str(status) in documented, f"{case}: {status} is not documented for {method.upper()} {path}"
    if status == 503:
        assert re.fullmatch(r"[0-9]+", response.headers.get("Retry-After", "")), f"{case}: no Retry-After"
        error = json.loads(body_text)["error"]
        enum = documented["503"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"][
            "properties"
        ]["code"]["enum"]
        assert error["code"] in enum, f"{case}: {error['code']} is not a documented 503"
        # The relay is the way to the vendor: its failure is the vendor unavailable to the caller.
        named = "vendor" if case.dependency == "relay" else case.dependency
        assert error.get("dependency") == named, f"{case}: names {error.get('dependency')}"
    if case.expect == "unavailable":
        assert status == 503, f"{case}: expected a 503, got {status} {body_text[:200]}"
    elif case.expect == "degraded":
        assert 200 <= status < 300, f"{case}: expected a degraded 2xx, got {status} {body_text[:200]}"


def run_case(case: Case, monkeypatch, env, faults, fake, request_fn) -> None:
    overrides = fault_env(case.dependency, case.fault, env, faults, fake)
    if overrides is None:
        return
    arm(case.dependency, case.fault, faults, fake, scheduled=case.expect is None)
    with monkeypatch.context() as mp:
        for name, value in overrides.items():
            mp.setenv(name, value)
        module = load_app(case.service)
        module.runtime.reset()
        started = time.monotonic()
        try:
            request_fn(module)
        finally:
            module.runtime.reset()
            faults.proxy.clear()
            fake.clear_faults()
        elapsed = time.monotonic() - started
    # An API function has 10 s; a scheduled run (the check with its workers) has more.
    limit = 8 if case.expect is not None else 40
    assert elapsed < limit, f"{case}: took {elapsed:.1f} s"
    REPORT[(case.service, case.dependency, case.fault)] += 1


# ---------------------------------------------------------------- the cases

QUOTE_OPERATIONS = [("one symbol", "/api/quote?symbol=HIST"), ("a batch", "/api/quote?symbols=HIST,OLD")]
BACKTEST_OPERATIONS = [
    ("recent years (PostgreSQL)", "/api/backtest?symbol=HIST&start=2023-01-01&end=2024-06-30", "recent"),
    ("older years (the lake)", "/api/backtest?symbol=OLD&start=2001-01-01&end=2002-12-31", "old"),
    ("across the seam", "/api/backtest?symbol=HIST&start=2019-06-01&end=2020-06-30&interval=5d", "seam"),
    ("CSV", "/api/backtest?symbol=HIST&start=2023-01-01&end=2023-03-31&format=csv", "recent"),
]


def quote_cases():
    for label, _ in QUOTE_OPERATIONS:
        for fault in FAULTS:
            # Redis down: straight from the vendor ("bypass"); the vendor down, nothing cached: a 503.
            yield Case("quote", label, "redis", fault, "degraded")
            for way in ("vendor", "relay"):
                yield Case("quote", label, way, fault, "unavailable" if label == "one symbol" else "degraded")


@pytest.mark.parametrize("case", list(quote_cases()), ids=lambda c: f"{c.label}-{c.dependency}-{c.fault}")
def test_quote_routes(case, sweep_world, faults, vendor, redis_client, monkeypatch):
    env, _ = sweep_world
    path = dict(QUOTE_OPERATIONS)[case.label]

    def request(module):
        from redis import Redis

        Redis.from_url(env["REDIS_URL"]).flushdb()  # nothing cached: the vendor must be asked
        with local_client(module, "quote") as client:
            response = client.http.get(path)
        if case.label == "a batch" and case.dependency in ("vendor", "relay"):
            # A batch answers 200, with each symbol's 503 in its errors.
            errors = json.loads(response.body)["errors"]
            assert errors and all(e["code"].startswith("upstream_") for e in errors), response.body
        check_answer(case, response, module.DOCUMENT, "/api/quote", "get")

    run_case(case, monkeypatch, env, faults, vendor, request)


def backtest_cases():
    for label, _, tier in BACKTEST_OPERATIONS:
        for fault in FAULTS:
            # PostgreSQL down: every range from the lake. The lake down: a 503 where the range needs it.
            yield Case("backtest", label, "postgresql", fault, "degraded")
            yield Case("backtest", label, "s3", fault, "degraded" if tier == "recent" else "unavailable")


@pytest.mark.parametrize("case", list(backtest_cases()), ids=lambda c: f"{c.label}-{c.dependency}-{c.fault}")
def test_backtest_routes(case, sweep_world, faults, vendor, monkeypatch):
    env, _ = sweep_world
    path = next(p for label, p, _ in BACKTEST_OPERATIONS if label == case.label)

    def request(module):
        with local_client(module, "backtest") as client:
            response = client.http.get(path)
        check_answer(case, response, module.DOCUMENT, "/api/backtest", "get")
        if response.status_code == 200 and case.dependency == "postgresql":
            assert response.headers["X-Source"] == "lake"

    run_case(case, monkeypatch, env, faults, vendor, request)


ALERTS_OPERATIONS = [
    ("list rules", "get", "/api/alerts/rules", None),
    ("create a rule", "post", "/api/alerts/rules", {"symbol": "HIST", "condition": "close < 1"}),
    ("get a rule", "get", "/api/alerts/rules/{rule_id}", None),
    ("change a rule", "patch", "/api/alerts/rules/{rule_id}", {"enabled": False}),
    ("delete a rule", "delete", "/api/alerts/rules/{rule_id}", None),
    ("list events", "get", "/api/alerts/events", None),
    ("list channels", "get", "/api/alerts/channels", None),
    ("add a channel", "post", "/api/alerts/channels", {"type": "email", "address": "sweep@example.com"}),
    ("remove a channel", "delete", "/api/alerts/channels/{channel_id}", None),
]


def alerts_cases():
    for label, _, path, _ in ALERTS_OPERATIONS:
        for fault in FAULTS:
            # The key set, or the table, down: every route a 503 (the key set only matters before it is held).
            yield Case("alerts", label, "cognito", fault, "unavailable")
            yield Case("alerts", label, "dynamodb", fault, "unavailable")
            if "channel" in path:
                # SNS down: the list shows the statuses last seen; adding and removing wait for it.
                yield Case("alerts", label, "sns", fault, "degraded" if label == "list channels" else "unavailable")


@pytest.mark.parametrize("case", list(alerts_cases()), ids=lambda c: f"{c.label}-{c.dependency}-{c.fault}")
def test_alerts_routes(case, sweep_world, faults, vendor, monkeypatch):
    env, world = sweep_world
    [(method, path, body)] = [(m, p, b) for label, m, p, b in ALERTS_OPERATIONS if label == case.label]
    # A rule and a channel to act on, made while everything works (a user of its own per
    # case, within the limits on rules and channels).
    headers = {"Content-Type": "application/json", **world.headers(f"sweeper-{time.monotonic_ns()}")}
    monkeypatch.setenv("AWS_READ_TIMEOUT_S", "10")  # a healthy moto may be slow while the suite runs
    for healthy in fresh_app("alerts"):
        with local_client(healthy, "alerts") as client:
            rule = json.loads(
                client.http.post(
                    "/api/alerts/rules", headers=headers, body=json.dumps({"symbol": "ALRT", "condition": "close < 1"})
                ).body
            )
            made = client.http.post(
                "/api/alerts/channels", headers=headers, body=json.dumps({"type": "email", "address": "c@example.com"})
            )
            channel = json.loads(made.body)
    monkeypatch.setenv("AWS_READ_TIMEOUT_S", QUICK["AWS_READ_TIMEOUT_S"])
    concrete = path.format(rule_id=rule["id"], channel_id=channel["id"])

    def request(module):
        with local_client(module, "alerts") as client:
            kwargs = {"headers": headers}
            if body is not None:
                kwargs["body"] = json.dumps(body)
            response = getattr(client.http, method)(concrete, **kwargs)
        check_answer(case, response, module.DOCUMENT, path, method)

    run_case(case, monkeypatch, env, faults, vendor, request)


# ---------------------------------------------------------------- the scheduled functions


def scheduled_cases():
    for fault in FAULTS:
        for dependency in ("dynamodb", "sns", "redis", "postgresql", "vendor", "relay"):
            yield Case("alerts", "alerts-check", dependency, fault, None)
        for dependency in ("postgresql", "s3", "vendor", "relay", "redis"):
            yield Case("backtest", "daily-update", dependency, fault, None)


# How a scheduled run's report names each failure.
# Which (function, dependency) down leaves the run unable to do its job. The check's
# planner fails its invocation (Lambda retries it, then sends it to the failure
# destination) when it cannot hand the check out: the registry unreadable (DynamoDB),
# the work topic unreachable (SNS). A check handed out that could not do its job is
# said by its completion (ChecksCompleted 0, the report's failure): the indicator states
# unreadable (PostgreSQL), the vendor down for every symbol. The update fails when it
# stopped before storing. Redis down is ridden out (quotes straight from the vendor, the
# budget counted here), and so is the lake (PostgreSQL holds the day; the next run
# catches the lake up).
FAILS = {
    ("alerts-check", "dynamodb"),
    ("alerts-check", "postgresql"),
    ("alerts-check", "vendor"),
    ("alerts-check", "relay"),
    ("alerts-check", "sns"),
    ("daily-update", "postgresql"),
    ("daily-update", "vendor"),
    ("daily-update", "relay"),
}
NAMED = {
    ("alerts-check", "dynamodb"): lambda r: r["errors"] or r["failed"],
    ("alerts-check", "sns"): lambda r: any("handed out" in e for e in r["errors"]),
    ("alerts-check", "postgresql"): lambda r: r["reasons"].get("history_unavailable"),
    ("alerts-check", "vendor"): lambda r: any(k.startswith("upstream_") for k in r["reasons"]),
    ("alerts-check", "relay"): lambda r: any(k.startswith("upstream_") for k in r["reasons"]),
    ("alerts-check", "redis"): lambda r: r["checked"] >= 1,  # Redis down: quotes straight from the vendor
    ("daily-update", "postgresql"): lambda r: "PostgreSQL" in (r["stopped"] or ""),
    ("daily-update", "s3"): lambda r: any("lake" in v for v in r["failed"].values()) or r["stopped"],
    ("daily-update", "vendor"): lambda r: bool(r["stopped"] and r["days_left"]),
    ("daily-update", "relay"): lambda r: bool(r["stopped"] and r["days_left"]),
    ("daily-update", "redis"): lambda r: len(r["days_filled"]) == 1,  # the budget counted here instead
}


@pytest.mark.parametrize("case", list(scheduled_cases()), ids=lambda c: f"{c.label}-{c.dependency}-{c.fault}")
def test_scheduled_functions(case, sweep_world, faults, vendor, monkeypatch):
    env, world = sweep_world
    following = vendor.following_session
    from redis import Redis

    Redis.from_url(env["REDIS_URL"]).flushdb()  # no quote cached: the vendor is asked
    monkeypatch.setenv("AWS_READ_TIMEOUT_S", "10")  # the setup, with everything healthy
    if case.label == "alerts-check":
        # A rule that fires (new, so it fires whatever ran before), on a symbol with a live
        # price, for a user with a channel.
        user = f"scheduler-{time.monotonic_ns()}"
        headers = {"Content-Type": "application/json", **world.headers(user)}
        for module in fresh_app("alerts"):
            with local_client(module, "alerts") as client:
                client.http.post(
                    "/api/alerts/rules",
                    headers=headers,
                    body=json.dumps({"symbol": "ALRT", "condition": "price > 0", "frequency": "on_change"}),
                )
                world.subscribe(client, user)
    else:
        # One session to fill, the one after the stored history, from the vendor.
        monkeypatch.setenv("RECENT_AS_OF", following.isoformat())
    monkeypatch.setenv("AWS_READ_TIMEOUT_S", QUICK["AWS_READ_TIMEOUT_S"])

    def request(module):
        from shared.observability import RunFailed

        with local_client(module, case.service) as client, run_lines() as lines:
            event = client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[f"arn:rule/{case.label}"]
            )
            try:
                report, failed = client.lambda_.invoke(case.label, event).payload, False
            except RunFailed as exc:
                report, failed = exc.report, True
            if case.label == "alerts-check" and not failed and not report.get("completed"):
                # The check's shards and deliveries, by its workers, with the fault still on.
                EventSource(
                    world.sqs, world.work_queue, lambda e: client.lambda_.invoke("alerts-worker", e).payload
                ).drain(timeout_s=20)
        assert isinstance(report, dict), f"{case}: the run ended without a report: {report}"
        # The whole report in one line, its metrics on it: the plan's, or the check's when it completed.
        runs = [x for x in lines if x.get("job") == case.label]
        line = next((x for x in runs if x["report"].get("completed")), runs[0])
        report = line["report"]
        if case.label == "alerts-check" and report.get("completed"):
            failed = line["outcome"] == "failed"
        OUTCOMES["report"] += 1
        assert NAMED[(case.label, case.dependency)](report), f"{case}: the report does not say it: {report}"
        assert line["outcome"] == ("failed" if failed else "done")
        metrics = emf_metrics(line)
        heartbeat = "ChecksCompleted" if case.label == "alerts-check" else "UpdatesCompleted"
        assert metrics[heartbeat] == (0 if failed else 1), f"{case}: {metrics}"
        assert failed == ((case.label, case.dependency) in FAILS), f"{case}: failed={failed} {report}"

    try:
        run_case(case, monkeypatch, env, faults, vendor, request)
    finally:
        if case.label == "daily-update":
            undo_update(env, following)


def undo_update(env: dict, session: date) -> None:
    """PostgreSQL as before the run, so each case starts from the same history (the lake
    may keep the bar: appending it again changes nothing)."""
    from shared import postgres

    conn = postgres.connect(env["DATABASE_URL"], 5)
    try:
        conn.run("DELETE FROM daily_bars WHERE day = :d", d=session)
        conn.run(
            "UPDATE symbols SET last_day = (SELECT max(day) FROM daily_bars WHERE daily_bars.symbol = symbols.symbol)"
            " WHERE last_day = :d",
            d=session,
        )
    finally:
        conn.close()


def test_zz_the_sweep_prints_its_cases():
    """Last in this module: the count of (route, dependency, fault) cases, and the answers."""
    total = sum(REPORT.values())
    assert total >= 100, f"only {total} cases ran"
    by_service = Counter()
    for (service, _, _), n in REPORT.items():
        by_service[service] += n
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(OUTCOMES.items(), key=str))
    SUMMARY.setdefault("dependency sweep", []).extend(
        [
            f"{total} (route or scheduled function, dependency, fault) cases: "
            + ", ".join(f"{s} {n}" for s, n in sorted(by_service.items())),
            f"answers: {answers}; 500s: {OUTCOMES.get(500, 0)}",
        ]
    )
    assert OUTCOMES.get(500, 0) == 0
