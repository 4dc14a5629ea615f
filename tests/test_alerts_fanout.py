"""A check fanned out over the work queue, under SQS's at-least-once delivery: shards
delivered twice, two workers on one shard, a worker killed halfway, a unit of work that
keeps failing, a check that overruns; and the indicators a rule compares, as a chart of
the whole history shows them. moto's SQS and SNS over HTTP, real PostgreSQL, the
``alerts-worker`` handler invoked as Lambda's event source invokes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import pytest

from devtools.doubles.sqs_poller import EventSource
from tests.support import pandas_ema, pandas_rsi, pandas_sma, walk
from tests.test_alerts_check import FALLING, LAST_BAR, add_rule, events
from tests.test_quote_api import ticker


def worker_invoke(client):
    return lambda event: client.lambda_.invoke("alerts-worker", event).payload


def messages_on_queue(world) -> list[dict]:
    """Take every message off the work queue, without working on them."""
    taken = []
    while True:
        got = world.sqs.receive_message(QueueUrl=world.work_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not got.get("Messages"):
            return taken
        for message in got["Messages"]:
            taken.append(message)
            world.sqs.delete_message(QueueUrl=world.work_queue, ReceiptHandle=message["ReceiptHandle"])


def firing_ids(world, name: str) -> list[str]:
    return [f["firing_id"] for m in world.messages(name) for f in m["firings"]]


def test_a_shard_delivered_twice_and_worked_by_two_workers_sends_each_firing_once(
    alerts_client, alerts_app, alerts_world, alice
):
    for i in range(4):
        alerts_world.load_bars(f"DUP{i}", FALLING, LAST_BAR)
        add_rule(alerts_client, alice, symbol=f"DUP{i}")
    alerts_world.subscribe(alerts_client, "alice")
    from tests.support import invoke_scheduled

    planned, failed = invoke_scheduled(alerts_client, "alerts-check")
    assert not failed and planned["shards"] == 1
    [shard] = messages_on_queue(alerts_world)
    # The same shard message three times over: SQS may deliver it again, and two workers may hold it at once.
    for _ in range(3):
        alerts_world.sqs.send_message(QueueUrl=alerts_world.work_queue, MessageBody=shard["Body"])
    EventSource(alerts_world.sqs, alerts_world.work_queue, worker_invoke(alerts_client)).drain(timeout_s=60, workers=3)
    delivered = firing_ids(alerts_world, "alice")
    assert len(delivered) == 4 and len(set(delivered)) == 4
    record = alerts_app.runtime.checks.get(planned["check"])
    assert record["status"] == "completed"
    assert (record["checked"], record["fired"], record["messages"]) == (4, 4, 1)  # the shard counted once
    assert len(events(alerts_client, alice)) == 4


def test_a_worker_killed_halfway_through_its_shard_loses_nothing_and_doubles_nothing(
    alerts_client, alerts_app, alerts_world, alice
):
    """A real worker process (the make run poller) killed with SIGKILL after it claimed
    some of its shard's firings; the message comes back after its visibility timeout and
    another worker finishes the shard: every firing sent exactly once."""
    for i in range(12):
        alerts_world.load_bars(f"KIL{i:02d}", FALLING, LAST_BAR)
        add_rule(alerts_client, alice, symbol=f"KIL{i:02d}")
    alerts_world.subscribe(alerts_client, "alice")
    # Every claim (a firing's record written) answered slowly, so the kill lands mid-shard.
    slow = alerts_world.proxy.fail('"S": "pending"', late_s=0.5)
    from tests.support import invoke_scheduled

    planned, _ = invoke_scheduled(alerts_client, "alerts-check")
    worker = subprocess.Popen(
        [sys.executable, "-m", "devtools.doubles.sqs_poller", "--workers", "1"],
        env={**os.environ, "ALERTS_FIRE_CONCURRENCY": "1"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while slow.hits < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slow.hits >= 4, "the worker never started claiming"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    claimed_before_kill = slow.hits
    assert claimed_before_kill < 12
    alerts_world.proxy.clear()
    record = alerts_app.runtime.checks.get(planned["check"])
    assert record.get("status") != "completed"

    def completed():
        return alerts_app.runtime.checks.get(planned["check"]).get("status") == "completed"

    assert EventSource(alerts_world.sqs, alerts_world.work_queue, worker_invoke(alerts_client)).drain(
        completed, timeout_s=60, workers=2
    )
    delivered = firing_ids(alerts_world, "alice")
    assert sorted(delivered) == sorted(set(delivered)) and len(delivered) == 12


def test_one_failing_unit_of_a_batch_is_retried_alone_and_ends_in_the_dead_letter_queue(
    alerts_client, alerts_app, alerts_world, alice
):
    """The handler names the failed record in batchItemFailures: the other one is done and
    deleted; the failed one comes back, and after three receives SQS moves it to the DLQ."""
    from alerts.chalicelib.work import Shard, to_body

    for symbol in ("GOOD", "SICK"):
        alerts_world.load_bars(symbol, FALLING, LAST_BAR)
        add_rule(alerts_client, alice, symbol=symbol)
    alerts_world.subscribe(alerts_client, "alice")
    checks = alerts_app.runtime.checks
    checks.start("batch", "2026-11-20T15:00:00Z", {"shards": 2, "buckets": 1}, {}, {}, [])
    units = [
        Shard("batch", 0, "2026-11-20", "2026-11-20", ["GOOD"]),
        Shard("batch", 1, "2026-11-20", "2026-11-20", ["SICK"]),
    ]
    alerts_world.proxy.fail('"ENABLED#SICK"', (500, {}, b'{"__type":"InternalServerError"}'))  # its rules unreadable
    event = {"Records": [{"messageId": f"m{u.number}", "receiptHandle": "-", "body": to_body(u)} for u in units]}
    answer = alerts_client.lambda_.invoke("alerts-worker", event).payload
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert checks.get("batch")["done"] == {0}

    for unit in units[1:]:
        alerts_world.sqs.send_message(QueueUrl=alerts_world.work_queue, MessageBody=to_body(unit))
    source = EventSource(alerts_world.sqs, alerts_world.work_queue, worker_invoke(alerts_client))
    source.drain(timeout_s=40)
    dead = alerts_world.sqs.receive_message(QueueUrl=alerts_world.dead_letters, WaitTimeSeconds=2).get("Messages", [])
    assert [json.loads(m["Body"])["symbols"] for m in dead] == [["SICK"]]
    assert source.failures == 3  # received three times, failed three times, then redriven


def test_a_check_still_running_at_the_next_tick_is_reported_late_and_its_firings_delivered(
    alerts_client, alerts_app, alerts_world, alice
):
    from tests.support import emf_metrics, invoke_scheduled, run_lines

    alerts_world.load_bars("LATE", FALLING, LAST_BAR)
    add_rule(alerts_client, alice, symbol="LATE")
    alerts_world.subscribe(alerts_client, "alice")
    first, _ = invoke_scheduled(alerts_client, "alerts-check")
    # Its shard is worked, but its delivery never comes (lost with a worker, say).
    [shard] = messages_on_queue(alerts_world)
    alerts_client.lambda_.invoke(
        "alerts-worker", {"Records": [{"messageId": "s", "receiptHandle": "-", "body": shard["Body"]}]}
    )
    messages_on_queue(alerts_world)  # the deliveries, dropped
    assert alerts_world.messages("alice") == []
    with run_lines() as lines:
        second, failed = invoke_scheduled(alerts_client, "alerts-check")
    assert not failed and second["late"] == first["check"]
    [line] = [x for x in lines if x.get("job") == "alerts-check"]
    assert emf_metrics(line)["ChecksLate"] == 1
    EventSource(alerts_world.sqs, alerts_world.work_queue, worker_invoke(alerts_client)).drain(timeout_s=60, workers=2)
    assert len(firing_ids(alerts_world, "alice")) == 1  # delivered once, by the late check's delivery
    assert alerts_app.runtime.checks.get(first["check"])["status"] == "completed"


# ---------------------------------------------------------------- indicators as charts show them


@pytest.mark.parametrize("live", [False, True], ids=["completed-bars", "live-price"])
def test_a_rules_indicators_are_the_whole_history_values(
    alerts_client, alerts_world, fake_polygon, redis_client, alice, live
):
    """sma/ema/rsi in a firing equal pandas' over the symbol's whole stored history (to
    1e-6 relative); with the live price, that price as today's bar."""
    bars = walk(900, seed=5)
    closes = [b.close for b in bars]
    alerts_world.load_bars("WALK", closes, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    price = round(closes[-1] * 1.02, 4)
    if live:
        redis_client.delete("{mds}quote:WALK")
        # A trade of the next session, after the last stored bar: today's bar so far.
        traded = int(datetime(2026, 11, 23, 15, 0, tzinfo=UTC).timestamp() * 1e9)
        trade = {"c": [], "i": "1", "p": price, "s": 1, "t": traded, "x": 4}
        fake_polygon.set_snapshot("WALK", ticker(ticker="WALK", lastTrade=trade))
        condition = "price > 0 and rsi(14) > 0 and ema(50) > 0 and sma(20) > 0 and rsi(200) > 0"
        series = [*closes, price]
    else:
        condition = "close > 0 and rsi(14) > 0 and ema(50) > 0 and sma(20) > 0 and rsi(200) > 0"
        series = closes
    add_rule(alerts_client, alice, symbol="WALK", condition=condition)
    report = alerts_world.check(alerts_client)
    assert report["fired"] == 1, report
    [message] = alerts_world.messages("alice")
    values = message["firings"][0]["values"]
    expected = {
        "rsi(14)": pandas_rsi(series, 14),
        "ema(50)": pandas_ema(series, 50),
        "sma(20)": pandas_sma(series, 20),
        "rsi(200)": pandas_rsi(series, 200),
    }
    for name, want in expected.items():
        assert values[name] == pytest.approx(want, rel=1e-6), name
    # The control: the last 3n+1 closes only (what the check did before) is not the chart's RSI.
    assert pandas_rsi(series[-43:], 14) != pytest.approx(values["rsi(14)"], rel=1e-6)
    assert date.fromisoformat(message["firings"][0]["bar_date"]) == LAST_BAR
