"""The rules API: authentication, ownership, validation and limits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.apps import ROOT
from tests.conftest import AUTH_SECRET, token_for

ALICE, BOB = token_for("alice"), token_for("bob")


def call(client, method: str, path: str, headers: dict | None = None, body=None):
    kwargs = {"headers": {"Content-Type": "application/json", **(headers or {})}}
    if body is not None:
        kwargs["body"] = json.dumps(body) if not isinstance(body, str) else body
    response = getattr(client.http, method)(path, **kwargs)
    try:
        return response, json.loads(response.body)
    except ValueError:
        return response, None


def create(client, headers=ALICE, **fields):
    rule = {"symbol": "AAPL", "condition": "close < sma(50)", **fields}
    return call(client, "post", "/api/alerts/rules", headers, rule)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        token_for("alice", secret="another-secret-0123456789abcdefgh"),
        token_for("alice", ttl_s=-10),  # expired
        {"Authorization": "Basic YWxpY2U6cGFzcw=="},
    ],
)
def test_requests_without_a_valid_token_are_refused(alerts_client, headers):
    response, _ = call(alerts_client, "get", "/api/alerts/rules", headers)
    assert response.status_code in (401, 403)


def test_rule_lifecycle(alerts_client):
    response, rule = create(alerts_client, symbol="msft", frequency="on_change", expires_at="2099-01-01T00:00:00Z")
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/alerts/rules/{rule['id']}"
    assert rule["symbol"] == "MSFT" and rule["frequency"] == "on_change" and rule["enabled"] is True
    assert rule["expires_at"] == "2099-01-01T00:00:00Z"

    _, listed = call(alerts_client, "get", "/api/alerts/rules", ALICE)
    assert [r["id"] for r in listed["rules"]] == [rule["id"]]
    _, fetched = call(alerts_client, "get", f"/api/alerts/rules/{rule['id']}", ALICE)
    assert fetched == rule

    response, changed = call(alerts_client, "patch", f"/api/alerts/rules/{rule['id']}", ALICE, {"enabled": False})
    assert response.status_code == 200
    assert changed["enabled"] is False and changed["condition"] == "close < sma(50)"

    response, _ = call(alerts_client, "delete", f"/api/alerts/rules/{rule['id']}", ALICE)
    assert response.status_code == 200
    response, body = call(alerts_client, "get", f"/api/alerts/rules/{rule['id']}", ALICE)
    assert response.status_code == 404 and body["error"]["code"] == "rule_not_found"


def test_a_user_never_sees_or_changes_another_users_rules(alerts_client):
    _, rule = create(alerts_client)
    path = f"/api/alerts/rules/{rule['id']}"
    assert call(alerts_client, "get", path, BOB)[0].status_code == 404
    assert call(alerts_client, "patch", path, BOB, {"enabled": False})[0].status_code == 404
    assert call(alerts_client, "delete", path, BOB)[0].status_code == 404
    assert call(alerts_client, "get", "/api/alerts/rules", BOB)[1] == {"rules": []}
    assert call(alerts_client, "get", path, ALICE)[1]["enabled"] is True


def test_a_syntax_error_says_where_and_what_was_expected(alerts_client):
    response, body = create(alerts_client, condition="close < sma(50) and")
    assert response.status_code == 400
    error = body["error"]
    assert error["code"] == "invalid_condition"
    assert error["position"] == 20
    assert any("operand" in e for e in error["expected"])
    assert "position 20" in error["message"]


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"condition": "close < sma(201)"}, "invalid_condition"),
        ({"condition": "__import__('os').system('x') > 1"}, "invalid_condition"),
        ({"condition": "close < " + "1" * 300}, "condition_too_long"),
        ({"frequency": "hourly"}, "invalid_frequency"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "invalid_expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "invalid_expires_at"),
        ({"enabled": "yes"}, "invalid_enabled"),
        ({"symbol": "a$b"}, "invalid_symbol"),
        ({"colour": "red"}, "unknown_field"),
    ],
)
def test_bad_rules_are_clear_400s(alerts_client, fields, code):
    response, body = create(alerts_client, **fields)
    assert response.status_code == 400
    assert body["error"]["code"] == code


def test_malformed_json_and_missing_fields(alerts_client):
    response, body = call(alerts_client, "post", "/api/alerts/rules", ALICE, "{not json")
    assert response.status_code == 400 and body["error"]["code"] == "invalid_json"
    response, body = call(alerts_client, "post", "/api/alerts/rules", ALICE, {"symbol": "AAPL"})
    assert response.status_code == 400 and body["error"]["code"] == "missing_field"


def test_rules_per_user_are_limited(alerts_client, monkeypatch):
    monkeypatch.setenv("ALERTS_MAX_RULES_PER_USER", "2")
    ids = [create(alerts_client)[1]["id"] for _ in range(2)]
    response, body = create(alerts_client)
    assert response.status_code == 400 and body["error"]["code"] == "too_many_rules"
    assert create(alerts_client, headers=BOB)[0].status_code == 201  # the limit is per user
    call(alerts_client, "delete", f"/api/alerts/rules/{ids[0]}", ALICE)
    assert create(alerts_client)[0].status_code == 201


def test_cli_mints_a_token_the_service_accepts(alerts_client, alerts_world):
    proc = subprocess.run(
        [sys.executable, "-m", "alerts.chalicelib.cli", "token", "--user", "carol"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"AUTH_SECRET": AUTH_SECRET, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    headers = {"Authorization": f"Bearer {proc.stdout.strip()}"}
    assert call(alerts_client, "get", "/api/alerts/rules", headers)[0].status_code == 200
