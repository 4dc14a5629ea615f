"""The scheduled check end to end: DynamoDB, SNS and Cognito on moto's server, each
user's webhook channel a real HTTP receiver, real PostgreSQL and Redis, the fake
Polygon; faults injected over HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import pytest

from alerts.chalicelib.checks import CheckReport
from alerts.chalicelib.planner import plan_check
from devtools.doubles.fault_proxy import DYNAMODB_THROTTLE, SNS_INTERNAL_ERROR
from tests.test_quote_api import ticker

LAST_BAR = date(2026, 11, 20)
FALLING = [20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10]  # close 10 < sma(5) 12


def add_rule(client, headers, **fields) -> dict:
    response = client.http.post(
        "/api/alerts/rules",
        headers={"Content-Type": "application/json", **headers},
        body=json.dumps({"symbol": "ACME", "condition": "close < sma(5)", **fields}),
    )
    assert response.status_code == 201, response.body
    return json.loads(response.body)


def events(client, headers) -> list[dict]:
    return json.loads(client.http.get("/api/alerts/events", headers=headers).body)["events"]


def quote_at(fake, symbol: str, price: float) -> None:
    fake.set_snapshot(
        symbol,
        ticker(
            ticker=symbol, lastTrade={"c": [], "i": "1", "p": price, "s": 1, "t": 1_700_000_000_000_000_000, "x": 4}
        ),
    )


def test_scheduled_check_fires_and_delivers_exactly_once(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    rule = add_rule(alerts_client, alice)
    report = alerts_world.check(alerts_client)
    assert (report["rules"], report["checked"], report["fired"], report["failed"]) == (1, 1, 1, 0)
    assert report["messages"] == 1
    [delivered] = alerts_world.messages("alice")  # its signature checked with alice's secret
    assert delivered["topic"].endswith(f":{alerts_world.topic_prefix}{alerts_world.sub('alice')}")
    assert delivered["subject"].startswith("ACME: close < sma(5)")
    assert delivered["user"] == alerts_world.sub("alice")
    [firing] = delivered["firings"]
    assert firing["rule_id"] == rule["id"] and firing["symbol"] == "ACME" and firing["condition"] == "close < sma(5)"
    assert firing["values"] == {"close": 10.0, "sma(5)": 12.0}
    assert firing["bar_date"] == LAST_BAR.isoformat()
    assert firing["firing_id"].startswith(f"{rule['id']}:day:")
    [event] = events(alerts_client, alice)
    assert event["delivery"] == "sent" and event["channels"] == 1 and event["values"] == {"close": 10.0, "sma(5)": 12.0}
    # A retried invocation (or the next one the same day) sends nothing more.
    assert alerts_world.check(alerts_client)["fired"] == 0
    assert alerts_world.messages("alice") == []
    assert events(alerts_client, alerts_world.headers("bob")) == []


@pytest.mark.parametrize("split_stored", [True, False])
def test_a_rule_across_a_split_does_not_fire_on_the_artificial_drop(alerts_client, alerts_world, alice, split_stored):
    """A 2-for-1 split executed on the last bar halves the price as traded: on raw bars
    close 10 < sma(5) 18 would fire; split-adjusted, every close is 10 and it must not.
    Without the split stored (the control) the same bars do fire: the test can fail."""
    alerts_world.load_bars("ACME", [20] * 10 + [10], LAST_BAR, splits=[(LAST_BAR, 1.0, 2.0)] if split_stored else [])
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice)
    report = alerts_world.check(alerts_client)
    assert (report["checked"], report["failed"]) == (1, 0)
    if split_stored:
        assert report["fired"] == 0 and alerts_world.messages("alice") == []
    else:
        assert report["fired"] == 1
        [firing] = alerts_world.messages("alice")[0]["firings"]
        assert firing["values"] == {"close": 10.0, "sma(5)": 18.0}


def test_one_message_per_user_per_check_listing_every_firing(alerts_client, alerts_world, alice):
    for symbol in ("AAA", "BBB", "CCC"):
        alerts_world.load_bars(symbol, FALLING, LAST_BAR)
        add_rule(alerts_client, alice, symbol=symbol)
    add_rule(alerts_client, alice, symbol="AAA", condition="close < 100")
    alerts_world.subscribe(alerts_client, "alice")
    report = alerts_world.check(alerts_client)
    assert (report["fired"], report["messages"]) == (4, 1)
    [delivered] = alerts_world.messages("alice")
    assert sorted(f["symbol"] for f in delivered["firings"]) == ["AAA", "AAA", "BBB", "CCC"]
    assert delivered["subject"] == "4 alerts fired: AAA, BBB, CCC"
    assert len({f["firing_id"] for f in delivered["firings"]}) == 4


def test_a_firing_reaches_its_owner_and_nobody_else(alerts_client, alerts_world, alice, bob):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.load_bars("BETA", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    alerts_world.subscribe(alerts_client, "bob")
    mine = add_rule(alerts_client, alice)
    his = add_rule(alerts_client, bob, symbol="BETA")
    assert alerts_world.check(alerts_client)["messages"] == 2
    [to_alice] = alerts_world.messages("alice")
    [to_bob] = alerts_world.messages("bob")
    assert [f["rule_id"] for f in to_alice["firings"]] == [mine["id"]]
    assert [f["rule_id"] for f in to_bob["firings"]] == [his["id"]]
    assert to_alice["topic"] != to_bob["topic"]
    assert [e["rule_id"] for e in events(alerts_client, bob)] == [his["id"]]


def test_every_confirmed_channel_of_the_owner_gets_it(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    second = alerts_client.http.post(
        "/api/alerts/channels",
        headers={"Content-Type": "application/json", **alice},
        body=json.dumps({"type": "webhook", "url": alerts_world.webhooks.url("alice-phone")}),
    )
    alerts_world.webhooks.expect("alice-phone", json.loads(second.body)["signing_secret"])
    add_rule(alerts_client, alice)
    assert alerts_world.check(alerts_client)["messages"] == 1  # one publish, SNS fans it out
    assert len(alerts_world.messages("alice")) == len(alerts_world.messages("alice-phone")) == 1
    assert events(alerts_client, alice)[0]["channels"] == 2


def test_a_user_without_a_channel_gets_the_event_and_no_message(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    add_rule(alerts_client, alice)
    report = alerts_world.check(alerts_client)
    assert (report["fired"], report["undelivered"], report["messages"]) == (0, 1, 0)
    [event] = events(alerts_client, alice)
    assert event["delivery"] == "no_channel" and event["channels"] == 0
    # Recorded for good: a channel added later does not receive old firings.
    alerts_world.subscribe(alerts_client, "alice")
    assert alerts_world.check(alerts_client)["messages"] == 0
    assert alerts_world.messages("alice") == []


def test_concurrent_checks_send_each_firing_once(alerts_client, alerts_app, alerts_world, alice):
    """Four planners at once (four containers, or a tick delivered four times), their
    shards worked by three pollers: every firing is sent once."""
    from concurrent.futures import ThreadPoolExecutor

    from devtools.doubles.sqs_poller import EventSource

    for i in range(6):
        alerts_world.load_bars(f"SYM{i}", FALLING, LAST_BAR)
        add_rule(alerts_client, alice, symbol=f"SYM{i}")
    alerts_world.subscribe(alerts_client, "alice")
    from alerts.chalicelib.runtime import AlertsRuntime

    runtimes = [AlertsRuntime() for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        plans = list(
            pool.map(lambda rt: plan_check(rt.alert_store, rt.checks, rt.quotes, rt.work_queue, rt.settings), runtimes)
        )
    for rt in runtimes:
        rt.reset()
    assert len({p.check for p in plans}) == 4 and all(p.shards == 1 for p in plans)
    source = EventSource(
        alerts_world.sqs, alerts_world.work_queue, lambda e: alerts_client.lambda_.invoke("alerts-worker", e).payload
    )
    source.drain(timeout_s=60, workers=3)
    delivered = [f["firing_id"] for m in alerts_world.messages("alice") for f in m["firings"]]
    assert sorted(delivered) == sorted(set(delivered)) and len(delivered) == 6
    checks = alerts_app.runtime.checks
    assert sum(CheckReport.of(checks.get(p.check)).counts["fired"] for p in plans) == 6


def test_once_fires_then_disables_itself(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    rule = add_rule(alerts_client, alice, frequency="once")
    assert alerts_world.check(alerts_client)["fired"] == 1
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{rule['id']}", headers=alice).body)
    assert got["enabled"] is False and got["last_fired_at"]
    assert alerts_world.check(alerts_client)["rules"] == 0
    assert len(alerts_world.messages("alice")) == 1


def test_on_change_fires_when_turning_true_and_rearms_when_false(
    alerts_client, alerts_world, fake_polygon, redis_client, alice
):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice, condition="price > 100", frequency="on_change")
    fired = []
    for price in (101, 102, 99, 103, 104):
        redis_client.delete("{mds}quote:ACME")
        quote_at(fake_polygon, "ACME", price)
        fired.append(alerts_world.check(alerts_client)["fired"])
    assert fired == [1, 0, 0, 1, 0]
    assert [m["firings"][0]["values"]["price"] for m in alerts_world.messages("alice")] == [101.0, 103.0]


def test_crosses_below_uses_the_last_two_bars(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", [10, 11, 12, 13, 14, 15, 11], LAST_BAR)  # close falls through its sma(3)
    add_rule(alerts_client, alice, condition="close crosses below sma(3)")
    assert alerts_world.check(alerts_client)["undelivered"] == 1
    alerts_world.load_bars("ACME", [10, 11, 12, 13, 14, 11, 10], LAST_BAR)  # below on both bars: no cross
    add_rule(alerts_client, alice, condition="close crosses below sma(4)")
    assert alerts_world.check(alerts_client)["undelivered"] == 0


def test_sns_failing_then_recovering_loses_nothing_and_doubles_nothing(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice)
    alerts_world.proxy.fail("Action=Publish&", SNS_INTERNAL_ERROR)
    report = alerts_world.check(alerts_client)
    assert (report["fired"], report["delivery_failed"]) == (0, 1)
    assert alerts_world.messages("alice") == []
    assert events(alerts_client, alice)[0]["delivery"] == "failed"
    alerts_world.proxy.clear()
    assert alerts_world.check(alerts_client)["fired"] == 1
    assert alerts_world.check(alerts_client)["fired"] == 0
    assert len(alerts_world.messages("alice")) == 1
    [event] = events(alerts_client, alice)  # the same event, now delivered
    assert event["delivery"] == "sent"


def test_a_publish_answered_too_late_is_never_repeated(alerts_client, alerts_world, alice):
    """SNS took the message but its answer did not come in time: it may have been
    delivered, so it is recorded unknown and not sent again, by this check or the next."""
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice)
    late = alerts_world.proxy.fail("Action=Publish&", late_s=6, times=1)  # the client waits 5 s
    report = alerts_world.check(alerts_client)
    assert late.hits == 1
    assert (report["fired"], report["delivery_failed"]) == (0, 0)
    assert len(alerts_world.messages("alice")) == 1  # delivered once, never again
    assert events(alerts_client, alice)[0]["delivery"] == "unknown"
    assert alerts_world.check(alerts_client)["fired"] == 0
    assert alerts_world.messages("alice") == []


def test_a_user_whose_channels_cannot_be_read_gets_the_firing_at_the_next_check(alerts_client, alerts_world, alice):
    """Where a user's alerts go is read (their META item) before anything is published:
    when it cannot be, the firing is marked failed, not sent, and the next check sends it."""
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice)
    alerts_world.proxy.fail('"sk": {"S": "META"}', DYNAMODB_THROTTLE)  # the user's META item, however read
    report = alerts_world.check(alerts_client)
    assert (report["fired"], report["delivery_failed"]) == (0, 1)
    assert alerts_world.messages("alice") == []
    alerts_world.proxy.clear()
    assert alerts_world.check(alerts_client)["fired"] == 1
    assert len(alerts_world.messages("alice")) == 1


def test_a_crash_between_publishing_and_saving_never_sends_twice(alerts_client, alerts_app, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    rule = add_rule(alerts_client, alice, frequency="once")
    store = alerts_app.runtime.alert_store
    item = store.get_rule(alerts_world.sub("alice"), rule["id"])
    # As if an earlier worker took the firing, published, and died before recording it.
    fid = f"{rule['id']}:once"
    claimed = {"firing_id": fid, "check": "earlier", "bucket": 0, "gsi2pk": "PENDING#earlier#0"}
    claimed.update(gsi2sk=f"{alerts_world.sub('alice')}#{fid}", user=alerts_world.sub("alice"))
    claimed.update(event_key="2026-11-20T15:00:00.000Z#" + rule["id"], rule=item, state={}, entry={})
    assert store.claim_firing(claimed) is None
    assert store.take_firing(fid, "earlier")
    report = alerts_world.check(alerts_client)
    assert report["fired"] == 0
    assert alerts_world.messages("alice") == []
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{rule['id']}", headers=alice).body)
    assert got["enabled"] is False  # the state catches up with what was (maybe) sent


def test_dynamodb_throttling_is_retried(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice)
    throttle = alerts_world.proxy.fail("DynamoDB_20120810.Query", DYNAMODB_THROTTLE, times=2)
    assert alerts_world.check(alerts_client)["fired"] == 1
    assert throttle.hits == 2
    assert len(alerts_world.messages("alice")) == 1


def test_throttled_firing_record_fails_the_rule_not_the_check_and_fires_later(alerts_client, alerts_world, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice)
    add_rule(alerts_client, alice, symbol="ACME", condition="close < 100", frequency="once")
    alerts_world.proxy.fail("DynamoDB_20120810.PutItem", DYNAMODB_THROTTLE)
    report = alerts_world.check(alerts_client)
    assert (report["checked"], report["fired"], report["failed"]) == (2, 0, 2)
    assert alerts_world.messages("alice") == []
    alerts_world.proxy.clear()
    assert alerts_world.check(alerts_client)["fired"] == 2
    [delivered] = alerts_world.messages("alice")
    assert len(delivered["firings"]) == 2


def test_quote_upstream_down(alerts_client, alerts_world, fake_polygon, monkeypatch, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    add_rule(alerts_client, alice, condition="price > 5")
    add_rule(alerts_client, alice, condition="close < 100")  # needs no quote
    fake_polygon.set_fault("ACME", status=500)
    report = alerts_world.check(alerts_client)
    assert (report["checked"], report["fired"], report["skipped"]) == (1, 1, 1)
    assert report["reasons"] == {"upstream_unavailable": 1}


def test_stale_quotes_are_used_and_marked_until_too_old(
    alerts_client, alerts_app, alerts_world, fake_polygon, monkeypatch, alice
):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    monkeypatch.setenv("QUOTE_TTL_S", "1")
    alerts_app.runtime.reset()
    quote_at(fake_polygon, "ACME", 42.0)
    alerts_app.runtime.quotes.get("ACME")  # cached
    time.sleep(1.1)
    fake_polygon.set_fault("ACME", status=503)
    add_rule(alerts_client, alice, condition="price > 5")
    assert alerts_world.check(alerts_client)["fired"] == 1
    [delivered] = alerts_world.messages("alice")
    assert delivered["firings"][0]["price_stale"] is True
    monkeypatch.setenv("ALERTS_MAX_QUOTE_AGE_S", "0.5")
    alerts_app.runtime.reset()
    add_rule(alerts_client, alice, condition="price > 6")
    report = alerts_world.check(alerts_client)
    assert report["reasons"].get("stale_quote") == 2


def test_a_rule_on_a_symbol_the_vendor_does_not_know_fails_alone(alerts_client, alerts_world, alice):
    """History stored, but the vendor has no quote for it (delisted, say): its price rule
    fails, said on the rule; the others fire."""
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.load_bars("ZZZZ", FALLING, LAST_BAR)
    alerts_world.subscribe(alerts_client, "alice")
    bad = add_rule(alerts_client, alice, symbol="ZZZZ", condition="price > 1")
    add_rule(alerts_client, alice)
    report = alerts_world.check(alerts_client)
    assert (report["fired"], report["failed"]) == (1, 1)
    assert report["reasons"] == {"unknown_symbol": 1}
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{bad['id']}", headers=alice).body)
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
        # The day after Thanksgiving closes at 13:00 New York.
        (datetime(2026, 11, 27, 17, 59, tzinfo=UTC), "open"),
        (
            datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
            "outside 09:30-13:00 America/New_York (early close: Day after Thanksgiving Day (markets close at 1:00pm))",
        ),
    ],
)
def test_the_check_runs_only_in_market_hours(alerts_app, alerts_world, monkeypatch, moment, market):
    monkeypatch.setenv("ALERTS_IGNORE_MARKET_HOURS", "0")
    alerts_app.runtime.reset()
    rt = alerts_app.runtime
    report = plan_check(rt.alert_store, rt.checks, rt.quotes, rt.work_queue, rt.settings, now=moment)
    assert report.market == market


def test_a_shard_reads_its_symbols_states_in_one_query(alerts_client, alerts_app, alerts_world, alice):
    """However many symbols and rules: one PostgreSQL query per shard (the states)."""
    from alerts.chalicelib.shard import run_shard
    from alerts.chalicelib.work import Shard

    alerts_world.subscribe(alerts_client, "alice")
    for symbol in ("AAA", "BBB", "CCC"):
        alerts_world.load_bars(symbol, FALLING, LAST_BAR)
        add_rule(alerts_client, alice, symbol=symbol, condition="close < sma(5)")
        add_rule(alerts_client, alice, symbol=symbol, condition="rsi(3) < 50 and ema(4) > close")
    rt = alerts_app.runtime
    calls = []

    class CountingDatabase:
        def run(self, work):
            calls.append(work)
            return rt.database.run(work)

    rt.checks.start("one-query", "2026-11-20T15:00:00Z", {"shards": 1, "buckets": 1}, {}, {}, [])
    shard = Shard("one-query", 0, "2026-11-20", "2026-11-20", ["AAA", "BBB", "CCC"])
    run = run_shard(shard, rt.alert_store, rt.checks, CountingDatabase(), rt.work_queue, rt.settings)
    assert run.counts["checked"] == 6 and run.counts["rules_seen"] == 6
    assert len(calls) == 1


def test_the_check_gets_its_quotes_in_one_call_per_chunk(alerts_client, alerts_world, fake_polygon, monkeypatch, alice):
    monkeypatch.setenv("QUOTE_BATCH_CHUNK", "2")
    alerts_client_app_reset(alerts_client)
    alerts_world.subscribe(alerts_client, "alice")
    symbols = [f"ACM{i}" for i in range(5)]
    for symbol in symbols:
        alerts_world.load_bars(symbol, FALLING, LAST_BAR)
        quote_at(fake_polygon, symbol, 9.0)
        add_rule(alerts_client, alice, symbol=symbol, condition="price < sma(5)")
    add_rule(alerts_client, alice, symbol="ACM0", condition="close < sma(3)")  # needs no quote
    report = alerts_world.check(alerts_client)
    assert report["fired"] == 6
    assert fake_polygon.count() == 3  # ceil(5 / 2)
    assert {s: fake_polygon.count(s) for s in symbols} == dict.fromkeys(symbols, 1)


def alerts_client_app_reset(client):
    """The app's clients rebuilt, so a setting changed by the test applies."""
    from tests.apps import load_app

    load_app("alerts").runtime.reset()


def test_a_symbol_whose_history_is_behind_is_skipped_with_its_reason(alerts_client, alerts_world, monkeypatch, alice):
    alerts_world.load_bars("ACME", FALLING, LAST_BAR)
    alerts_world.load_bars("LATE", FALLING, date(2026, 11, 13))  # five sessions behind the 20th
    alerts_world.subscribe(alerts_client, "alice")
    fresh = add_rule(alerts_client, alice)
    late = add_rule(alerts_client, alice, symbol="LATE")
    report = alerts_world.check(alerts_client)
    assert report["fired"] == 1 and report["skipped"] == 1
    assert report["reasons"] == {"stale_history": 1}
    [delivered] = alerts_world.messages("alice")
    assert delivered["firings"][0]["rule_id"] == fresh["id"]
    got = json.loads(alerts_client.http.get(f"/api/alerts/rules/{late['id']}", headers=alice).body)
    assert got["last_error"].startswith("stale_history: the newest stored bar is 2026-11-13, 5 session(s) behind")
    assert got["last_fired_at"] is None
    # The tolerance is a setting: five sessions behind is fine when five are allowed.
    monkeypatch.setenv("ALERTS_MAX_HISTORY_LAG", "5")
    alerts_client_app_reset(alerts_client)
    assert alerts_world.check(alerts_client)["fired"] == 1
    assert [m["firings"][0]["rule_id"] for m in alerts_world.messages("alice")] == [late["id"]]
