"""The scheduled check end to end: DynamoDB and SNS on moto's server (SQS subscribed),
real PostgreSQL and Redis, the fake Polygon; faults injected over HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import pytest

from alerts.chalicelib.check import run_check
from devtools.fault_proxy import DYNAMODB_THROTTLE, SNS_INTERNAL_ERROR
from tests.conftest import token_for
from tests.test_quote_api import ticker

ALICE = token_for("alice")
LAST_BAR = date(2026, 11, 20)
FALLING = [20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10]  # close 10 < sma(5) 12


def add_rule(client, headers=ALICE, **fields) -> dict:
    response = client.http.post(
        "/api/alerts/rules",
        headers={"Content-Type": "application/json", **headers},
        body=json.dumps({"symbol": "ACME", "condition": "close < sma(5)", **fields}),
    )
    assert response.status_code == 201, response.body
    return json.loads(response.body)


def check(client) -> dict:
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule/alerts-check"]
    )
    return client.lambda_.invoke("alerts-check", event).payload


def events(client, headers=ALICE) -> list[dict]:
    return json.loads(client.http.get("/api/alerts/events", headers=headers).body)["events"]


def quote_at(fake, symbol: str, price: float) -> None:
    fake.set_snapshot(
        symbol,
        ticker(
            ticker=symbol, lastTrade={"c": [], "i": "1", "p": price, "s": 1, "t": 1_700_000_000_000_000_000, "x": 4}
        ),
    )


def test_scheduled_check_fires_and_delivers_exactly_once(alerts_client, alerts_world):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    rule = add_rule(alerts_client)
    report = check(alerts_client)
    assert (report["rules"], report["checked"], report["fired"], report["failed"]) == (1, 1, 1, 0)
    [delivered] = alerts_world.messages()
    assert delivered["attributes"] == {"user": "alice", "symbol": "ACME"}
    assert delivered["subject"].startswith("ACME: close < sma(5)")
    message = delivered["message"]
    assert message["rule_id"] == rule["id"]
    assert message["values"] == {"close": 10.0, "sma(5)": 12.0}
    assert message["bar_date"] == LAST_BAR.isoformat()
    [event] = events(alerts_client)
    assert event["delivery"] == "sent" and event["values"] == {"close": 10.0, "sma(5)": 12.0}
    # A retried invocation (or the next one the same day) sends nothing more.
    assert check(alerts_client)["fired"] == 0
    assert alerts_world.messages() == []
    assert events(alerts_client, token_for("bob")) == []


def test_once_fires_then_disables_itself(alerts_client, alerts_world):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    rule = add_rule(alerts_client, frequency="once")
    assert check(alerts_client)["fired"] == 1
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{rule['id']}", headers=ALICE).body)
    assert got["enabled"] is False and got["last_fired_at"]
    assert check(alerts_client)["rules"] == 0
    assert len(alerts_world.messages()) == 1


def test_on_change_fires_when_turning_true_and_rearms_when_false(
    alerts_client, alerts_world, fake_polygon, redis_client
):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    add_rule(alerts_client, condition="price > 100", frequency="on_change")
    fired = []
    for price in (101, 102, 99, 103, 104):
        redis_client.delete("quote:ACME")
        quote_at(fake_polygon, "ACME", price)
        fired.append(check(alerts_client)["fired"])
    assert fired == [1, 0, 0, 1, 0]
    assert [m["message"]["values"]["price"] for m in alerts_world.messages()] == [101.0, 103.0]


def test_crosses_below_uses_the_last_two_bars(alerts_client, alerts_world):
    alerts_world.load_bars("ACME", [10, 11, 12, 13, 14, 15, 11], LAST_BAR)  # close falls through its sma(3)
    add_rule(alerts_client, condition="close crosses below sma(3)")
    assert check(alerts_client)["fired"] == 1
    alerts_world.load_bars("ACME", [10, 11, 12, 13, 14, 11, 10], LAST_BAR)  # below on both bars: no cross
    add_rule(alerts_client, condition="close crosses below sma(4)")
    assert check(alerts_client)["fired"] == 0


def test_sns_failing_then_recovering_loses_nothing_and_doubles_nothing(alerts_client, alerts_world):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    add_rule(alerts_client)
    alerts_world.proxy.fail("Action=Publish", SNS_INTERNAL_ERROR)
    report = check(alerts_client)
    assert (report["fired"], report["delivery_failed"]) == (0, 1)
    assert alerts_world.messages() == []
    assert events(alerts_client)[0]["delivery"] == "failed"
    alerts_world.proxy.clear()
    assert check(alerts_client)["fired"] == 1
    assert check(alerts_client)["fired"] == 0
    assert len(alerts_world.messages()) == 1
    [event] = events(alerts_client)  # the same event, now delivered
    assert event["delivery"] == "sent"


def test_a_crash_between_publishing_and_saving_never_sends_twice(alerts_client, alerts_app, alerts_world):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    rule = add_rule(alerts_client, frequency="once")
    store = alerts_app.runtime.alert_store
    item = store.get_rule("alice", rule["id"])
    # As if an earlier invocation claimed the firing, published, and died before recording it.
    assert store.claim_firing(f"{rule['id']}:once", item, "2026-11-20T15:00:00Z#" + rule["id"]) is None
    report = check(alerts_client)
    assert report["fired"] == 0
    assert alerts_world.messages() == []
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{rule['id']}", headers=ALICE).body)
    assert got["enabled"] is False  # the state catches up with what was (maybe) sent


def test_dynamodb_throttling_is_retried(alerts_client, alerts_world):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    add_rule(alerts_client)
    throttle = alerts_world.proxy.fail("DynamoDB_20120810.Query", DYNAMODB_THROTTLE, times=2)
    assert check(alerts_client)["fired"] == 1
    assert throttle.hits == 2
    assert len(alerts_world.messages()) == 1


def test_throttled_firing_record_fails_the_rule_not_the_check_and_fires_later(alerts_client, alerts_world):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    add_rule(alerts_client)
    add_rule(alerts_client, symbol="ACME", condition="close < 100", frequency="once")
    alerts_world.proxy.fail("DynamoDB_20120810.PutItem", DYNAMODB_THROTTLE)
    report = check(alerts_client)
    assert (report["checked"], report["fired"], report["failed"]) == (2, 0, 2)
    assert alerts_world.messages() == []
    alerts_world.proxy.clear()
    assert check(alerts_client)["fired"] == 2
    assert len(alerts_world.messages()) == 2


def test_quote_upstream_down(alerts_client, alerts_world, fake_polygon, monkeypatch):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    add_rule(alerts_client, condition="price > 5")
    add_rule(alerts_client, condition="close < 100")  # needs no quote
    fake_polygon.set_fault("ACME", status=500)
    report = check(alerts_client)
    assert (report["checked"], report["fired"], report["skipped"]) == (1, 1, 1)
    assert report["reasons"] == {"upstream_unavailable": 1}


def test_stale_quotes_are_used_and_marked_until_too_old(
    alerts_client, alerts_app, alerts_world, fake_polygon, monkeypatch
):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    monkeypatch.setenv("QUOTE_TTL_S", "1")
    alerts_app.runtime.reset()
    quote_at(fake_polygon, "ACME", 42.0)
    alerts_app.runtime.quotes.get("ACME")  # cached
    time.sleep(1.1)
    fake_polygon.set_fault("ACME", status=503)
    add_rule(alerts_client, condition="price > 5")
    assert check(alerts_client)["fired"] == 1
    [delivered] = alerts_world.messages()
    assert delivered["message"]["price_stale"] is True
    monkeypatch.setenv("ALERTS_MAX_QUOTE_AGE_S", "0.5")
    alerts_app.runtime.reset()
    add_rule(alerts_client, condition="price > 6")
    report = check(alerts_client)
    assert report["reasons"].get("stale_quote") == 2


def test_a_rule_on_an_unknown_symbol_fails_alone(alerts_client, alerts_world):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    bad = add_rule(alerts_client, symbol="ZZZZ", condition="price > 1")
    add_rule(alerts_client)
    report = check(alerts_client)
    assert (report["fired"], report["failed"]) == (1, 1)
    assert report["reasons"] == {"unknown_symbol": 1}
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{bad['id']}", headers=ALICE).body)
    assert got["last_error"] == "unknown symbol"


@pytest.mark.parametrize(
    "moment, market",
    [
        (datetime(2026, 11, 21, 16, 0, tzinfo=UTC), "weekend"),
        (datetime(2026, 11, 26, 16, 0, tzinfo=UTC), "NYSE holiday: Thanksgiving Day"),
        (datetime(2026, 11, 24, 14, 0, tzinfo=UTC), "outside 09:30-16:00 America/New_York"),  # 09:00 EST
        (datetime(2026, 7, 7, 20, 5, tzinfo=UTC), "outside 09:30-16:00 America/New_York"),  # 16:05 EDT
        (datetime(2026, 11, 24, 14, 30, tzinfo=UTC), "open"),  # 09:30 EST
        (datetime(2026, 7, 7, 13, 30, tzinfo=UTC), "open"),  # 09:30 EDT
    ],
)
def test_the_check_runs_only_in_market_hours(alerts_app, alerts_world, monkeypatch, moment, market):
    monkeypatch.setenv("ALERTS_IGNORE_MARKET_HOURS", "0")
    alerts_app.runtime.reset()
    rt = alerts_app.runtime
    report = run_check(rt.alert_store, rt.quotes, rt.database, rt.publisher, rt.settings, now=moment)
    assert report.market == market


def test_bars_for_all_rules_come_from_one_query(alerts_client, alerts_app, alerts_world):
    for symbol in ("AAA", "BBB", "CCC"):
        alerts_world.load_bars(symbol, FALLING, LAST_BAR)
        add_rule(alerts_client, symbol=symbol, condition="close < sma(5)")
        add_rule(alerts_client, symbol=symbol, condition="rsi(3) < 50 and ema(4) > close")
    rt = alerts_app.runtime
    calls = []

    class CountingDatabase:
        def run(self, work):
            calls.append(work)
            return rt.database.run(work)

    report = run_check(rt.alert_store, rt.quotes, CountingDatabase(), rt.publisher, rt.settings)
    assert report.checked == 6 and report.fired == 6
    assert len(calls) == 1


def test_the_check_gets_its_quotes_in_one_call_per_chunk(alerts_client, alerts_world, fake_polygon, monkeypatch):
    monkeypatch.setenv("QUOTE_BATCH_CHUNK", "2")
    alerts_client_app_reset(alerts_client)
    symbols = [f"ACM{i}" for i in range(5)]
    for symbol in symbols:
        alerts_world.load_bars(symbol, FALLING, LAST_BAR)
        quote_at(fake_polygon, symbol, 9.0)
        add_rule(alerts_client, symbol=symbol, condition="price < sma(5)")
    add_rule(alerts_client, symbol="ACM0", condition="close < sma(3)")  # needs no quote
    report = check(alerts_client)
    assert report["fired"] == 6
    assert fake_polygon.count() == 3  # ceil(5 / 2)
    assert {s: fake_polygon.count(s) for s in symbols} == dict.fromkeys(symbols, 1)


def alerts_client_app_reset(client):
    """The app's clients rebuilt, so a setting changed by the test applies."""
    from tests.apps import load_app

    load_app("alerts").runtime.reset()


def test_a_symbol_whose_history_is_behind_is_skipped_with_its_reason(alerts_client, alerts_world, monkeypatch):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.load_bars("LATE", FALLING, date(2026, 11, 13))  # five sessions behind the 20th
    fresh = add_rule(alerts_client)
    late = add_rule(alerts_client, symbol="LATE")
    report = check(alerts_client)
    assert report["fired"] == 1 and report["skipped"] == 1
    assert report["reasons"] == {"stale_history": 1}
    [delivered] = alerts_world.messages()
    assert delivered["message"]["rule_id"] == fresh["id"]
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{late['id']}", headers=ALICE).body)
    assert got["last_error"].startswith("stale_history: the newest stored bar is 2026-11-13, 5 session(s) behind")
    assert got["last_fired_at"] is None
    # The tolerance is a setting: five sessions behind is fine when five are allowed.
    monkeypatch.setenv("ALERTS_MAX_HISTORY_LAG", "5")
    alerts_client_app_reset(alerts_client)
    assert check(alerts_client)["fired"] == 1
    assert [m["message"]["rule_id"] for m in alerts_world.messages()] == [late["id"]]
