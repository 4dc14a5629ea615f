"""What a new user trips on at the APIs' edges: a symbol with a trailing newline, a
parameter given twice, a rule for a symbol without history, and errors in someone
else's shape (Chalice's 415, an HTTP server's 414): each is a clear 4xx in ours."""

from __future__ import annotations

import json
from datetime import date

import pytest

from tests.test_alerts_api import call, create


def body_of(response) -> dict:
    return json.loads(response.body)


@pytest.mark.parametrize("raw", ["AAPL%0a", "AAPL%0A", "AAPL%0d%0a", "AAPL%20", "%0aAAPL"])
def test_a_symbol_with_a_trailing_newline_is_a_400_not_a_404(quote_client, backtest_client, raw):
    for client, path in ((quote_client, f"/api/quote?symbol={raw}"), (backtest_client, f"/api/backtest?symbol={raw}")):
        response = client.http.get(path)
        assert response.status_code == 400, (path, response.body)
        assert body_of(response)["error"]["code"] == "invalid_symbol"


def test_a_rules_symbol_with_a_trailing_newline_is_refused(alerts_client, alice):
    response, body = create(alerts_client, alice, symbol="AAPL\n")
    assert response.status_code == 400 and body["error"]["code"] == "invalid_symbol"


def test_every_input_pattern_is_applied_to_the_whole_value():
    """The audit, as a property: each pattern the project applies to input refuses the
    value with a newline after it (``re.match`` with ``$`` would let it through)."""
    from alerts.chalicelib import auth, channels, rules
    from backtest.chalicelib import service
    from shared import symbols

    cases = [
        (lambda v: symbols.parse_symbol(v), "AAPL"),
        (lambda v: service._parse_date({"start": v}, "start"), "2024-01-02"),
        (lambda v: service.parse_overlays(v), "sma(5)"),
        (lambda v: channels.validate_channel({"type": "email", "address": v}, local_stage=True), "a@example.com"),
    ]
    from shared.errors import ApiError

    for check, good in cases:
        check(good)  # accepted as it is
        with pytest.raises(ApiError):
            check(good + "\n")
    import re

    for pattern in (rules.RULE_ID_PATTERN, rules.EVENT_CURSOR_PATTERN, channels.CHANNEL_ID_PATTERN):
        assert re.fullmatch(pattern, "0123456789abcdef\n") is None
    assert auth.SUBJECT.fullmatch("abc\n") is None


@pytest.mark.parametrize(
    "path",
    ["/api/quote?symbol=AAPL&symbol=MSFT", "/api/quote?symbols=AAPL&symbols=MSFT"],
)
def test_a_quote_parameter_given_twice_is_refused(quote_client, path):
    response = quote_client.http.get(path)
    assert response.status_code == 400 and body_of(response)["error"]["code"] == "repeated_parameter"


def test_a_backtest_parameter_given_twice_is_refused(backtest_client):
    response = backtest_client.http.get("/api/backtest?symbol=HIST&interval=5d&interval=1d")
    assert response.status_code == 400 and body_of(response)["error"]["code"] == "repeated_parameter"
    assert "'interval'" in body_of(response)["error"]["message"]


def test_a_rule_for_a_symbol_without_history_is_refused_with_why(alerts_client, alerts_world, alice):
    response, body = create(alerts_client, alice, symbol="NOPE")
    assert response.status_code == 400 and body["error"]["code"] == "unknown_symbol"
    assert "no history is stored for NOPE" in body["error"]["message"]
    alerts_world.load_bars("NOPE", [10.0] * 30, date(2026, 11, 20))
    assert create(alerts_client, alice, symbol="NOPE")[0].status_code == 201
    # Moving a rule to a symbol without history is refused the same way.
    _, rule = create(alerts_client, alice)
    moved, body = call(alerts_client, "patch", f"/api/alerts/rules/{rule['id']}", alice, {"symbol": "NADA"})
    assert moved.status_code == 400 and body["error"]["code"] == "unknown_symbol"


def test_a_post_without_content_type_gets_our_error_shape(alerts_client, alice):
    response = alerts_client.http.post(
        "/api/alerts/rules", headers={**alice, "Content-Type": "text/plain"}, body='{"symbol": "AAPL"}'
    )
    assert response.status_code == 415
    assert body_of(response) == {
        "error": {"code": "unsupported_media_type", "message": body_of(response)["error"]["message"]}
    }
    assert response.headers["Content-Type"] == "application/json"


def test_volume_is_one_type_whichever_tier_answers(backtest_client):
    """Across the seam (the lake before, PostgreSQL after) every volume is a number of one
    JSON type: a float, as the vendor's (fractional ones exist)."""
    response = backtest_client.http.get("/api/backtest?symbol=HIST&start=2019-06-01&end=2020-06-30&limit=10000")
    body = body_of(response)
    assert response.headers.get("X-Source") == "lake+postgres" or body.get("source") == "lake+postgres"
    kinds = {type(b[field]).__name__ for b in body["bars"] for field in ("open", "high", "low", "close", "volume")}
    assert kinds == {"float"}, kinds
