"""Every cross-origin call the dashboard makes in `make run`'s stack passes the browser's
CORS preflight: a dependency that starts refusing preflights (moto 5.2.6 answered the
user pool's with a 500) fails here, in one line, not as six browser timeouts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest

# What the page sends to the user pool (web/src/auth.js) and to the APIs (web/src/api.js, alerts.js).
COGNITO_HEADERS = ("content-type", "x-amz-target")
API_HEADERS = ("authorization", "content-type", "if-none-match")


def origin(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}"


def preflight(url: str, page_origin: str, method: str, headers: tuple[str, ...]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        url,
        method="OPTIONS",
        headers={
            "Origin": page_origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ", ".join(headers),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


def listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def assert_allowed(what: str, status: int, headers: dict, page_origin: str, method: str, asked: tuple[str, ...]):
    prefix = f"{what} refused the page's CORS preflight ({method}, from {page_origin})"
    assert 200 <= status < 300, f"{prefix}: HTTP {status}; the browser would never send the call"
    assert headers.get("access-control-allow-origin") in ("*", page_origin), f"{prefix}: no Access-Control-Allow-Origin"
    methods = listed(headers.get("access-control-allow-methods"))
    assert "*" in methods or method.lower() in methods, f"{prefix}: {method} not in Allow-Methods {methods}"
    allowed = listed(headers.get("access-control-allow-headers"))
    missing = set(asked) - allowed
    assert "*" in allowed or not missing, f"{prefix}: headers {sorted(missing)} not in Allow-Headers {sorted(allowed)}"


def page_config(stack) -> tuple[str, dict]:
    page = stack.web.url
    with urllib.request.urlopen(f"{page}/config.json", timeout=10) as response:
        return origin(page), json.loads(response.read())


def test_every_cross_origin_endpoint_the_page_calls_answers_its_preflight(stack):
    page_origin, config = page_config(stack)
    calls = [(config["auth"]["endpoint"], "POST", COGNITO_HEADERS, "the user pool's endpoint")]
    for service in ("quote", "backtest", "alerts"):
        base = config.get(service) or page_origin
        # Same-origin calls need no preflight; a page configured with the APIs elsewhere does.
        calls.append((f"{base}/api/{service}", "GET", API_HEADERS, f"the {service} API"))
    cross = [call for call in calls if origin(call[0]) != page_origin]
    # Locally the APIs are same-origin (the page's server routes /api/*), the user pool is not.
    assert [what for *_, what in cross] == ["the user pool's endpoint"]
    for url, method, asked, what in cross:
        status, headers = preflight(url, page_origin, method, asked)
        assert_allowed(f"{what} ({url})", status, headers, page_origin, method, asked)


@pytest.mark.parametrize(
    "service, path, method",
    [
        ("quote", "/api/quote", "GET"),
        ("backtest", "/api/backtest", "GET"),
        ("alerts", "/api/alerts/rules", "POST"),
        ("alerts", "/api/alerts/rules/0123456789abcdef", "PATCH"),
        ("alerts", "/api/alerts/channels/0123456789abcdef", "DELETE"),
        ("alerts", "/api/alerts/events", "GET"),
    ],
)
def test_the_apis_answer_a_preflight_from_a_page_elsewhere(stack, service, path, method):
    page_origin = "https://dashboard.example.com"
    status, headers = preflight(stack.url(service) + path, page_origin, method, API_HEADERS)
    assert_allowed(f"the {service} API", status, headers, page_origin, method, API_HEADERS)


def test_a_refused_preflight_fails_the_check():
    """The assertion above is not vacuous: moto 5.2.6's answer fails it."""
    with pytest.raises(AssertionError, match="HTTP 500"):
        assert_allowed("x", 500, {}, "http://127.0.0.1:1", "POST", COGNITO_HEADERS)
    with pytest.raises(AssertionError, match="x-amz-target"):
        headers = {"access-control-allow-origin": "*", "access-control-allow-methods": "POST"}
        assert_allowed(
            "x", 200, {**headers, "access-control-allow-headers": "content-type"}, "o", "POST", COGNITO_HEADERS
        )
