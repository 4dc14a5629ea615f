"""The vendor through the relay, as the functions in the VPC reach it: the same answers as
the direct call, the key held by the relay alone, the vendor's own Retry-After passed on,
and a relay that asks the vendor and nothing else. (The relay down, slow or throttled is
in tests/test_dependency_sweep.py.)"""

from __future__ import annotations

import json
from datetime import date

import pytest

from devtools.doubles.fake_polygon import FakePolygon
from devtools.doubles.local_lambda import relay_function_name, serve_relay
from devtools.local.sample_data import synthetic_bars
from quote.chalicelib.vendor_relay import VendorRelay
from shared.config import Settings
from tests.support import fresh_app, local_client

KEY = "relay-only-key-4f1c"


@pytest.fixture
def keyed_vendor():
    """A vendor that answers only to the key."""
    bars = {s: synthetic_bars(s, date(2026, 6, 1), 60, 40.0) for s in ("AAPL", "MSFT")}
    fake = FakePolygon(bars, api_key=KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def relayed(monkeypatch, redis_url, keyed_vendor):
    """The quote app with no key of its own, calling the relay that holds it."""
    relay = serve_relay({"POLYGON_BASE_URL": keyed_vendor.url, "POLYGON_API_KEY": KEY})
    for name, value in {
        "REDIS_URL": redis_url,
        "POLYGON_BASE_URL": keyed_vendor.url,
        "POLYGON_API_KEY": "",
        "POLYGON_RETRIES": "0",
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        "POLYGON_RELAY_FUNCTION": relay_function_name(),
        "AWS_ENDPOINT_URL_LAMBDA": relay.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for module in fresh_app("quote"):
        with local_client(module, "quote") as client:
            yield client, relay
    relay.stop()


def test_a_quote_miss_goes_through_the_relay_with_the_key_it_alone_holds(relayed, keyed_vendor):
    client, relay = relayed
    one = client.http.get("/api/quote?symbol=AAPL")
    many = client.http.get("/api/quote?symbols=AAPL,MSFT,NOPE")
    assert one.status_code == 200 and json.loads(one.body)["cache"]["status"] == "miss"
    body = json.loads(many.body)
    assert [r["symbol"] for r in body["results"]] == ["AAPL", "MSFT"]
    assert [e["code"] for e in body["errors"]] == ["unknown_symbol"]
    # One invoke per vendor request: the single, the batch (MSFT and NOPE), NOPE's confirmation.
    assert relay.invocations == keyed_vendor.count() == 3


def test_the_vendors_retry_after_reaches_the_caller_through_the_relay(relayed, keyed_vendor):
    client, _ = relayed
    keyed_vendor.set_fault("AAPL", status=429, retry_after=7)
    response = client.http.get("/api/quote?symbol=AAPL")
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert json.loads(response.body)["error"]["code"] == "upstream_rate_limited"


def test_the_relay_asks_the_vendor_and_nothing_else(keyed_vendor):
    relay = VendorRelay(Settings.from_env({"POLYGON_BASE_URL": keyed_vendor.url, "POLYGON_API_KEY": KEY}))
    path = "/v2/snapshot/locale/us/markets/stocks/tickers/AAPL"
    answer = relay.handle({"method": "GET", "url": keyed_vendor.url + path})
    assert answer["status"] == 200 and KEY not in json.dumps(answer)
    for event in (
        {"method": "GET", "url": "http://169.254.169.254/latest/meta-data/"},
        {"method": "GET", "url": keyed_vendor.url.replace("127.0.0.1", "localhost") + path},
        {"method": "POST", "url": keyed_vendor.url + path},
        {"url": 7},
        "not an object",
    ):
        assert relay.handle(event)["error"]["kind"] == "refused", event
    assert keyed_vendor.count() == 1


def test_a_vendor_that_does_not_answer_is_said_so():
    from devtools.doubles.fault_proxy import closed_port

    relay = VendorRelay(Settings.from_env({"POLYGON_BASE_URL": f"http://127.0.0.1:{closed_port()}"}))
    answer = relay.handle({"method": "GET", "url": relay.settings.polygon_base_url + "/v2/x"})
    assert answer == {"error": {"kind": "unreachable", "message": "the vendor is unreachable"}}
