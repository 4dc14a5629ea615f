"""What an operator sees: one JSON line per API request and per scheduled run, with the
metrics CloudWatch reads off it (Embedded Metric Format), and nothing secret in it."""

from __future__ import annotations

import json
import logging

import pytest

from shared import observability
from shared.observability import METRICS, JsonLines, emf
from tests.support import emf_metrics, invoke_scheduled, run_lines


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


def test_a_check_writes_its_report_and_metrics_on_one_line(alerts_client, alice):
    with run_lines() as lines:
        report, failed = invoke_scheduled(alerts_client, "alerts-check")
    assert not failed
    [line] = [x for x in lines if x.get("job") == "alerts-check"]
    assert line["report"] == report and line["outcome"] == "done" and line["level"] == "INFO"
    metrics = emf_metrics(line)
    assert metrics["ChecksCompleted"] == 1 and metrics["RulesChecked"] == report["checked"]
    assert {f"Phase{p.title()}Ms" for p in observability.CHECK_PHASES} <= set(metrics)


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
