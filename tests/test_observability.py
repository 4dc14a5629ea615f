"""What an operator sees: one JSON line per API request and per scheduled run, with the
metrics CloudWatch reads off it (Embedded Metric Format), and nothing secret in it."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

from shared import observability
from shared.observability import METRICS, JsonLines, emf
from tests.support import emf_metrics, run_lines


def summary_lines(lines: list[dict]) -> list[dict]:
    return [x for x in lines if "route" in x and "status" in x]


def test_a_quote_request_writes_one_line_with_its_cache_statuses_and_upstream_calls(quote_client):
    with run_lines() as lines:
        first = quote_client.http.get("/api/quote?symbols=AAPL,MSFT,NOPE")
        again = quote_client.http.get("/api/quote?symbol=AAPL")
    assert first.status_code == again.status_code == 200
    miss, hit = summary_lines(lines)
    assert (miss["route"], miss["method"], miss["status"]) == ("/api/quote", "GET", 200)
    # Only what happened is a metric on the line (each is summed: a zero adds nothing but bytes).
    missed = emf_metrics(miss)
    assert missed == {"QuotesMiss": 2, "UpstreamCalls": missed["UpstreamCalls"]} and missed["UpstreamCalls"] >= 1
    assert emf_metrics(hit) == {"QuotesHit": 1}
    assert len(json.dumps(hit, separators=(",", ":"))) < 600  # every request pays for its line's bytes
    assert miss["service"] == "quote" and miss["stage"] == "dev" and miss["latency_ms"] > 0
    assert all(isinstance(x.get("requestId"), str) and x["requestId"] for x in (miss, hit))


def test_an_error_answer_names_its_code(quote_client):
    with run_lines() as lines:
        assert quote_client.http.get("/api/quote?symbol=a$b").status_code == 400
    [line] = summary_lines(lines)
    assert line["status"] == 400 and line["error"] == "invalid_symbol"


def test_a_history_request_writes_its_tier_and_latency(backtest_client):
    with run_lines() as lines:
        backtest_client.http.get("/api/backtest?symbol=HIST&start=2023-01-02&end=2023-03-31")
        backtest_client.http.get("/api/backtest?symbol=OLD&start=2001-01-01&end=2001-12-31")
        backtest_client.http.get("/api/backtest?symbol=HIST&start=2023-01-02&end=2023-03-31&interval=4d")
    recent, old, bad = summary_lines(lines)
    assert (recent["tier"], old["tier"]) == ("postgres", "lake")
    assert recent["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "stage", "tier"]]
    assert emf_metrics(recent) == {"Latency": recent["latency_ms"]}
    assert bad["status"] == 400 and bad["error"] == "invalid_interval" and "_aws" not in bad


def test_an_alerts_request_writes_one_line_and_never_the_token(alerts_client, alice):
    with run_lines() as lines:
        response = alerts_client.http.get("/api/alerts/rules", headers=alice)
    assert response.status_code == 200
    [line] = summary_lines(lines)
    assert line["route"] == "/api/alerts/rules" and line["status"] == 200
    token = alice["Authorization"].split()[1]
    assert all(token not in json.dumps(x) for x in lines)
    assert "_aws" not in line  # API Gateway's own metrics cover this API


def test_a_check_writes_its_plan_and_its_completion_each_on_one_line(alerts_client, alerts_world, alice):
    """The planner's run: one line with its report (its invocation fails only when it could
    not hand the check out); the worker that completes the check: one line with the
    check's report and its metrics (the heartbeat, what it evaluated, how long it took)."""
    alerts_world.load_bars("ACME", [20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10], date(2026, 11, 20))
    alerts_world.subscribe(alerts_client, "alice")
    created = alerts_client.http.post(
        "/api/alerts/rules",
        headers={"Content-Type": "application/json", **alice},
        body=json.dumps({"symbol": "ACME", "condition": "close < sma(5)"}),
    )
    assert created.status_code == 201
    with run_lines() as lines:
        report = alerts_world.check(alerts_client)
    [plan] = [x for x in lines if x.get("job") == "alerts-check" and not x["report"]["completed"]]
    [done] = [x for x in lines if x.get("job") == "alerts-check" and x["report"]["completed"]]
    assert plan["outcome"] == done["outcome"] == "done" and done["report"]["check"] == plan["report"]["check"]
    assert done["report"]["fired"] == report["fired"] == 1
    metrics = emf_metrics(done)
    assert metrics["ChecksCompleted"] == 1 and metrics["RulesChecked"] == 1 and metrics["RulesFired"] == 1
    assert 0 < metrics["CheckSeconds"] < 60
    assert "ChecksCompleted" not in emf_metrics(plan)  # planned is not done: the completion says it


# ---------------------------------------------------------------- the pieces, without servers


def test_every_metric_is_declared_and_a_stray_one_is_refused():
    names = [(m.service, m.name) for m in METRICS]
    assert len(names) == len(set(names))
    with pytest.raises(KeyError):
        emf("quote", "dev", {"NotDeclared": 1.0})
    with pytest.raises(ValueError, match="dimension tier"):
        emf("backtest", "dev", {"Latency": 3.0})  # its tier is required
    assert emf("quote", "dev", {}) == {}


def test_the_local_formatter_writes_lambdas_shape():
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "INFO", "levelno": 20, "msg": "a %s", "args": ("b",), "route": "/r"}
    )
    with observability.collecting("req-1"):
        line = json.loads(JsonLines().format(record))
    assert line["message"] == "a b" and line["level"] == "INFO" and line["logger"] == "x"
    assert line["requestId"] == "req-1" and line["route"] == "/r"
    assert line["timestamp"].endswith("+00:00")


def test_facts_reach_a_pool_thread_only_through_carry():
    from concurrent.futures import ThreadPoolExecutor

    with observability.collecting() as facts, ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: observability.count("bare"), range(3)))
        list(pool.map(observability.carry(lambda _: observability.count("carried")), range(3)))
    assert facts.counts == {"carried": 3}


def test_log_level_means_what_it_says(monkeypatch):
    from shared.config import ConfigError, log_level

    assert log_level({"LOG_LEVEL": "warning"}) == "WARNING" and log_level({}) == "INFO"
    with pytest.raises(ConfigError):
        log_level({"LOG_LEVEL": "LOUD"})
