"""The rules and channels API: who may call it (Cognito's tokens only), ownership,
validation and limits. Accounts and tokens come from moto's Cognito over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.apps import ROOT
from tests.support import PASSWORD


def call(client, method: str, path: str, headers: dict | None = None, body=None):
    kwargs = {"headers": {"Content-Type": "application/json", **(headers or {})}}
    if body is not None:
        kwargs["body"] = json.dumps(body) if not isinstance(body, str) else body
    response = getattr(client.http, method)(path, **kwargs)
    try:
        return response, json.loads(response.body)
    except ValueError:
        return response, None


def create(client, headers, **fields):
    rule = {"symbol": "AAPL", "condition": "close < sma(50)", **fields}
    return call(client, "post", "/api/alerts/rules", headers, rule)


# ---------------------------------------------------------------- who may call


def moto_private_key():
    """moto's signing key, which ships inside moto: anyone can sign with it."""
    import jwt
    from moto.utilities.utils import load_resource

    return jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json")).key


def claims_of(token: str) -> dict:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


def forged(world, name: str, sign_with, algorithm="RS256", kid="dummy", **changes) -> dict:
    """A real token of ``name``'s, its claims changed and signed again with ``sign_with``."""
    import jwt

    token_claims = {**claims_of(world.user(name)["AccessToken"]), **changes}
    token = jwt.encode(token_claims, sign_with, algorithm=algorithm, headers={"kid": kid} if kid else None)
    return {"Authorization": f"Bearer {token}"}


def other_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


WRONG_TOKENS = {
    "no header": lambda world: {},
    "not a JWT": lambda world: {"Authorization": "Bearer not-a-jwt"},
    "basic auth": lambda world: {"Authorization": "Basic YWxpY2U6cGFzcw=="},
    "signed by another key, same kid": lambda world: forged(world, "alice", other_key()),
    "signed by another key, its own kid": lambda world: forged(world, "alice", other_key(), kid="rotated-away"),
    "HS256 with a guessed secret": lambda world: forged(world, "alice", "secret", algorithm="HS256"),
    "HS256 keyed with the public key": lambda world: forged(
        world, "alice", b"-----BEGIN PUBLIC KEY-----", algorithm="HS256"
    ),
    "alg none": lambda world: forged(world, "alice", None, algorithm="none"),
    "expired": lambda world: forged(world, "alice", moto_private_key(), exp=int(time.time()) - 60),
    "issued for another client": lambda world: forged(world, "alice", moto_private_key(), client_id="someone-else"),
    "issued by another pool": lambda world: forged(
        world, "alice", moto_private_key(), iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"
    ),
    "not an access or id token": lambda world: forged(world, "alice", moto_private_key(), token_use="refresh"),
    "an ID token of another client": lambda world: forged(
        world, "alice", moto_private_key(), token_use="id", aud="someone-else"
    ),
}


@pytest.mark.parametrize("case", WRONG_TOKENS, ids=list(WRONG_TOKENS))
def test_every_wrong_token_answers_401(alerts_client, alerts_world, case):
    response, body = call(alerts_client, "get", "/api/alerts/rules", WRONG_TOKENS[case](alerts_world))
    assert response.status_code == 401, response.body
    assert body == {"message": "Unauthorized"}


def test_the_pools_own_tokens_are_accepted_access_and_id(alerts_client, alerts_world):
    """The cases above could all pass on an API that refuses everything: show it does not."""
    for token in ("AccessToken", "IdToken"):
        response, body = call(alerts_client, "get", "/api/alerts/rules", alerts_world.headers("alice", token))
        assert response.status_code == 200 and body == {"rules": []}
    # A token from another pool's client (a real Cognito token, just not ours) is refused.
    from alerts.chalicelib.accounts import create_pool, create_user, sign_in

    other_pool, other_client = create_pool(alerts_world.cognito, alerts_world.name + "-other")
    try:
        create_user(alerts_world.cognito, other_pool, "eve@example.com", PASSWORD)
        token = sign_in(alerts_world.cognito, other_client, "eve@example.com", PASSWORD)["AccessToken"]
        response, _ = call(alerts_client, "get", "/api/alerts/rules", {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    finally:
        alerts_world.cognito.delete_user_pool(UserPoolId=other_pool)
    # As is one from a second app client of our own pool.
    second = alerts_world.cognito.create_user_pool_client(UserPoolId=alerts_world.pool_id, ClientName="other")
    token = sign_in(alerts_world.cognito, second["UserPoolClient"]["ClientId"], "alice@example.com", PASSWORD)
    response, _ = call(alerts_client, "get", "/api/alerts/rules", {"Authorization": f"Bearer {token['AccessToken']}"})
    assert response.status_code == 401


def test_only_the_local_stage_trusts_motos_public_key(alerts_app, alerts_world, monkeypatch):
    """Every stage but dev refuses a token signed with moto's key, even when the key set
    it is pointed at (moto's, here) serves that key."""
    from tests.support import local_client

    headers = alerts_world.headers("alice")
    with local_client(alerts_app, "alerts") as client:
        assert call(client, "get", "/api/alerts/rules", headers)[0].status_code == 200
    for stage in ("aws-dev", "aws-prod"):
        monkeypatch.setenv("STAGE", stage)
        alerts_app.runtime.reset()
        with local_client(alerts_app, "alerts") as client:
            response, body = call(client, "get", "/api/alerts/rules", headers)
        assert response.status_code == 401 and body == {"message": "Unauthorized"}, stage
    # Not a stage that refuses everything: a key of the pool's own (not public) is trusted there.
    from devtools.doubles.token_issuer import TokenIssuer

    issuer = TokenIssuer(alerts_world.pool_id, alerts_world.client_id)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", issuer.endpoint_url)
        alerts_app.runtime.reset()
        with local_client(alerts_app, "alerts") as client:
            own = {"Authorization": f"Bearer {issuer.token(alerts_world.sub('alice'))}"}
            assert call(client, "get", "/api/alerts/rules", own)[0].status_code == 200
            assert call(client, "get", "/api/alerts/rules", headers)[0].status_code == 401
    finally:
        issuer.stop()


def test_the_caller_is_the_tokens_sub(alerts_client, alerts_world, alice):
    _, rule = create(alerts_client, alice)
    stored = alerts_world.dynamodb.get_item(
        TableName=alerts_world.name,
        Key={"pk": {"S": f"USER#{alerts_world.sub('alice')}"}, "sk": {"S": f"RULE#{rule['id']}"}},
    )
    assert stored["Item"]["user"]["S"] == alerts_world.sub("alice")


# ---------------------------------------------------------------- rules


def test_rule_lifecycle(alerts_client, alice):
    response, rule = create(
        alerts_client, alice, symbol="msft", frequency="on_change", expires_at="2099-01-01T00:00:00Z"
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/alerts/rules/{rule['id']}"
    assert rule["symbol"] == "MSFT" and rule["frequency"] == "on_change" and rule["enabled"] is True
    assert rule["expires_at"] == "2099-01-01T00:00:00Z"

    _, listed = call(alerts_client, "get", "/api/alerts/rules", alice)
    assert [r["id"] for r in listed["rules"]] == [rule["id"]]
    _, fetched = call(alerts_client, "get", f"/api/alerts/rules/{rule['id']}", alice)
    assert fetched == rule

    response, changed = call(alerts_client, "patch", f"/api/alerts/rules/{rule['id']}", alice, {"enabled": False})
    assert response.status_code == 200
    assert changed["enabled"] is False and changed["condition"] == "close < sma(50)"

    response, _ = call(alerts_client, "delete", f"/api/alerts/rules/{rule['id']}", alice)
    assert response.status_code == 200
    response, body = call(alerts_client, "get", f"/api/alerts/rules/{rule['id']}", alice)
    assert response.status_code == 404 and body["error"]["code"] == "rule_not_found"


def test_a_user_never_sees_or_changes_another_users_rules(alerts_client, alice, bob):
    _, rule = create(alerts_client, alice)
    path = f"/api/alerts/rules/{rule['id']}"
    assert call(alerts_client, "get", path, bob)[0].status_code == 404
    assert call(alerts_client, "patch", path, bob, {"enabled": False})[0].status_code == 404
    assert call(alerts_client, "delete", path, bob)[0].status_code == 404
    assert call(alerts_client, "get", "/api/alerts/rules", bob)[1] == {"rules": []}
    assert call(alerts_client, "get", path, alice)[1]["enabled"] is True


def test_a_syntax_error_says_where_and_what_was_expected(alerts_client, alice):
    response, body = create(alerts_client, alice, condition="close < sma(50) and")
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
def test_bad_rules_are_clear_400s(alerts_client, alice, fields, code):
    response, body = create(alerts_client, alice, **fields)
    assert response.status_code == 400
    assert body["error"]["code"] == code


def test_malformed_json_and_missing_fields(alerts_client, alice):
    response, body = call(alerts_client, "post", "/api/alerts/rules", alice, "{not json")
    assert response.status_code == 400 and body["error"]["code"] == "invalid_json"
    response, body = call(alerts_client, "post", "/api/alerts/rules", alice, {"symbol": "AAPL"})
    assert response.status_code == 400 and body["error"]["code"] == "missing_field"


def test_rules_per_user_are_limited(alerts_client, monkeypatch, alice, bob):
    monkeypatch.setenv("ALERTS_MAX_RULES_PER_USER", "2")
    ids = [create(alerts_client, alice)[1]["id"] for _ in range(2)]
    response, body = create(alerts_client, alice)
    assert response.status_code == 400 and body["error"]["code"] == "too_many_rules"
    assert create(alerts_client, bob)[0].status_code == 201  # the limit is per user
    call(alerts_client, "delete", f"/api/alerts/rules/{ids[0]}", alice)
    assert create(alerts_client, alice)[0].status_code == 201


# ---------------------------------------------------------------- channels


def add_channel(client, headers, **body):
    return call(client, "post", "/api/alerts/channels", headers, body)


def test_channel_lifecycle(alerts_client, alerts_world, alice):
    response, email = add_channel(alerts_client, alice, type="email", address="Alice.Smith@Example.COM")
    assert response.status_code == 201, email
    assert response.headers["Location"] == f"/api/alerts/channels/{email['id']}"
    # moto confirms every subscription at once; SNS itself waits for the link in its email.
    assert email == {
        "id": email["id"],
        "type": "email",
        "address": "Alice.Smith@example.com",
        "status": "confirmed",
        "created_at": email["created_at"],
    }
    response, hook = add_channel(alerts_client, alice, type="webhook", url=alerts_world.webhooks.url("alice"))
    assert response.status_code == 201 and hook["url"] == alerts_world.webhooks.url("alice")
    assert len(hook["signing_secret"]) == 64
    _, listed = call(alerts_client, "get", "/api/alerts/channels", alice)
    assert [c["id"] for c in listed["channels"]] == [email["id"], hook["id"]]
    # One SNS subscription each, on alice's own topic.
    topic = f"arn:aws:sns:us-east-1:123456789012:{alerts_world.topic_prefix}{alerts_world.sub('alice')}"
    subscriptions = alerts_world.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sorted(s["Endpoint"] for s in subscriptions) == sorted(
        ["Alice.Smith@example.com", alerts_world.webhooks.url("alice")]
    )
    response, body = add_channel(alerts_client, alice, type="email", address="Alice.Smith@example.com")
    assert response.status_code == 409 and body["error"]["code"] == "channel_exists"
    response, _ = call(alerts_client, "delete", f"/api/alerts/channels/{email['id']}", alice)
    assert response.status_code == 200
    assert [s["Endpoint"] for s in alerts_world.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]] == [
        alerts_world.webhooks.url("alice")
    ]
    response, body = call(alerts_client, "delete", f"/api/alerts/channels/{email['id']}", alice)
    assert response.status_code == 404 and body["error"]["code"] == "channel_not_found"


def test_a_user_never_sees_or_removes_another_users_channels(alerts_client, alerts_world, alice, bob):
    _, channel = add_channel(alerts_client, alice, type="webhook", url=alerts_world.webhooks.url("alice"))
    assert call(alerts_client, "get", "/api/alerts/channels", bob)[1] == {"channels": []}
    response, body = call(alerts_client, "delete", f"/api/alerts/channels/{channel['id']}", bob)
    assert response.status_code == 404 and body["error"]["code"] == "channel_not_found"
    assert len(call(alerts_client, "get", "/api/alerts/channels", alice)[1]["channels"]) == 1
    # bob's webhook secret is his own.
    _, his = add_channel(alerts_client, bob, type="webhook", url=alerts_world.webhooks.url("bob"))
    assert his["signing_secret"] != channel["signing_secret"]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"type": "sms", "address": "+15550100"}, "invalid_channel_type"),
        ({"address": "a@example.com"}, "missing_field"),
        ({"type": "email"}, "missing_field"),
        ({"type": "email", "address": "a@example.com", "url": "https://x.example.com"}, "unknown_field"),
        ({"type": "email", "address": "a@example.com", "name": "me"}, "unknown_field"),
        ({"type": "email", "address": "not-an-address"}, "invalid_email"),
        ({"type": "email", "address": "Ann <a@example.com>"}, "invalid_email"),
        ({"type": "email", "address": "a@localhost"}, "invalid_email"),
        ({"type": "email", "address": "a@@example.com"}, "invalid_email"),
        ({"type": "email", "address": "a@example.com\nBcc: b@example.com"}, "invalid_email"),
        ({"type": "email", "address": 42}, "invalid_email"),
        ({"type": "webhook", "url": "ftp://example.com/hook"}, "invalid_url"),
        ({"type": "webhook", "url": "http://example.com/hook"}, "invalid_url"),  # http:// only on loopback
        ({"type": "webhook", "url": "https://user:pw@example.com/hook"}, "invalid_url"),
        ({"type": "webhook", "url": "https://example.com/hook#x"}, "invalid_url"),
        ({"type": "webhook", "url": "https://exa mple.com/"}, "invalid_url"),
        ({"type": "webhook", "url": "https://example.com:99999/"}, "invalid_url"),
        ({"type": "webhook", "url": "https://-bad-.example.com/"}, "invalid_url"),
        ({"type": "webhook", "url": "https:///path-only"}, "invalid_url"),
        ({"type": "webhook", "url": "https://example.com/" + "x" * 2100}, "invalid_url"),
        ({"type": "webhook", "url": "https://exämple.com/"}, "invalid_url"),
        ("[]", "invalid_body"),
        ("{nope", "invalid_json"),
    ],
)
def test_bad_channels_are_clear_400s(alerts_client, alice, body, code):
    response, answer = call(alerts_client, "post", "/api/alerts/channels", alice, body)
    assert response.status_code == 400, answer
    assert answer["error"]["code"] == code


def test_webhooks_on_aws_stages_are_https_to_public_hosts_only():
    from alerts.chalicelib.channels import validate_webhook_url
    from shared.errors import ApiError

    for url in (
        "http://127.0.0.1:8080/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://intranet/hook",
    ):
        with pytest.raises(ApiError) as refused:
            validate_webhook_url(url, local_stage=False)
        assert refused.value.code == "invalid_url", url
    assert validate_webhook_url("https://hooks.example.com:8443/alerts?x=1", local_stage=False)
    assert validate_webhook_url("https://8.8.8.8/hook", local_stage=False)
    # Locally, http:// is allowed on loopback only, where tests and make run receive.
    assert validate_webhook_url("http://127.0.0.1:8796/hooks/demo", local_stage=True)
    assert validate_webhook_url("http://localhost:9000/x", local_stage=True)


def test_channels_per_user_are_limited(alerts_client, alerts_world, monkeypatch, alice, bob):
    monkeypatch.setenv("ALERTS_MAX_CHANNELS_PER_USER", "2")
    alerts_client_reset()
    made = [add_channel(alerts_client, alice, type="email", address=f"a{i}@example.com")[1] for i in range(2)]
    response, body = add_channel(alerts_client, alice, type="email", address="a3@example.com")
    assert response.status_code == 400 and body["error"]["code"] == "too_many_channels"
    assert add_channel(alerts_client, bob, type="email", address="b@example.com")[0].status_code == 201
    call(alerts_client, "delete", f"/api/alerts/channels/{made[0]['id']}", alice)
    assert add_channel(alerts_client, alice, type="email", address="a3@example.com")[0].status_code == 201


def test_users_topics_are_counted_against_the_accounts_quota(alerts_client, alerts_world, monkeypatch, alice, bob):
    """One SNS topic per user with a channel, counted: past ALERTS_MAX_TOPICS a new user's
    first channel is a 503 with a Retry-After (not a 500 from SNS refusing), and a user who
    removes their last channel gives their topic back."""
    monkeypatch.setenv("ALERTS_MAX_TOPICS", "1")
    alerts_client_reset()
    first, made = add_channel(alerts_client, alice, type="email", address="a@example.com")
    assert first.status_code == 201
    assert (
        add_channel(alerts_client, alice, type="email", address="a2@example.com")[0].status_code == 201
    )  # the same topic
    refused, body = add_channel(alerts_client, bob, type="email", address="b@example.com")
    assert refused.status_code == 503 and body["error"]["code"] == "notifications_at_capacity"
    assert int(refused.headers["Retry-After"]) > 0
    topics = lambda: [  # noqa: E731
        t["TopicArn"] for t in alerts_world.sns.list_topics()["Topics"] if alerts_world.topic_prefix in t["TopicArn"]
    ]
    assert len(topics()) == 1
    for channel in call(alerts_client, "get", "/api/alerts/channels", alice)[1]["channels"]:
        call(alerts_client, "delete", f"/api/alerts/channels/{channel['id']}", alice)
    assert topics() == []  # alice's topic went with her last channel
    assert add_channel(alerts_client, bob, type="email", address="b@example.com")[0].status_code == 201


def alerts_client_reset():
    from tests.apps import load_app

    load_app("alerts").runtime.reset()


# ---------------------------------------------------------------- the operator's command line


def test_cli_creates_an_account_and_prints_a_token_the_service_accepts(alerts_client, alerts_world):
    env = {**alerts_world.env(), "PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "testing"}
    env["AWS_SECRET_ACCESS_KEY"] = "testing"

    def cli(*args, extra=None):
        return subprocess.run(
            [sys.executable, "-m", "alerts.chalicelib.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**env, **(extra or {})},
            timeout=60,
        )

    made = cli("user", "create", "--email", "carol@example.com", "--password", PASSWORD)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["status"] == "CONFIRMED"
    again = cli("user", "create", "--email", "carol@example.com", "--password", PASSWORD)
    assert again.returncode == 2 and "already has an account" in again.stderr
    weak = cli("user", "create", "--email", "dan@example.com", "--password", "short")
    assert weak.returncode == 2 and "password" in weak.stderr.lower()
    # The password from the environment, so it stays out of the shell's history.
    token = cli("token", "--email", "carol@example.com", extra={"ALERTS_PASSWORD": PASSWORD})
    assert token.returncode == 0, token.stderr
    headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
    assert call(alerts_client, "get", "/api/alerts/rules", headers)[0].status_code == 200
    wrong = cli("token", "--email", "carol@example.com", "--password", "not-the-password")
    assert wrong.returncode == 2 and wrong.stdout == ""
    # Without --password an account gets a temporary one by email, to change at the first sign-in.
    invited = cli("user", "create", "--email", "erin@example.com")
    assert invited.returncode == 0 and json.loads(invited.stdout)["status"] == "FORCE_CHANGE_PASSWORD"
