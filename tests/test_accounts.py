"""The user pool: the local one (make run, on moto) is the one the template declares,
and its ids are the ones a plain chalice local assumes."""

from __future__ import annotations

import pytest

from alerts.chalicelib import accounts
from alerts.chalicelib.auth import TEST_KEY_ID, TEST_KEY_MODULUS_SHA256, modulus_sha256
from shared.config import LOCAL_DEFAULTS
from tests.apps import ROOT


def template_resources() -> dict:
    from cfnlint.decode import decode

    template, errors = decode(str(ROOT / "infra" / "stateful.yaml"))
    assert not errors
    return template["Resources"]


def test_the_local_pool_is_the_one_the_template_declares():
    resources = template_resources()
    pool = resources["UserPool"]["Properties"]
    for key, value in accounts.USER_POOL.items():
        assert pool[key] == value, key
    client = resources["DashboardClient"]["Properties"]
    for key, value in accounts.APP_CLIENT.items():
        assert client[key] == value, key
    assert client["GenerateSecret"] is False  # a public client: a page keeps no secret
    assert pool["UserPoolTier"] == "LITE"
    assert resources["UserPool"]["DeletionPolicy"] == "Retain"  # accounts are state


def test_the_local_pool_has_the_ids_a_plain_chalice_local_assumes(moto_server):
    """moto makes the ids from the definitions; LOCAL_DEFAULTS names them. Creating the
    local pool twice gives the same pool (make run restarts against the same moto)."""
    cognito = moto_server.client("cognito-idp")
    first = accounts.create_pool(cognito)
    assert first == accounts.create_pool(cognito)
    assert first == (LOCAL_DEFAULTS["COGNITO_USER_POOL_ID"], LOCAL_DEFAULTS["COGNITO_CLIENT_ID"])


def test_the_test_key_refused_off_dev_is_motos_own():
    import jwt
    from moto.utilities.utils import load_resource

    [key] = load_resource("cognitoidp/resources/jwks-public.json")["keys"]
    assert key["kid"] == TEST_KEY_ID
    assert modulus_sha256(jwt.PyJWK(key).key) == TEST_KEY_MODULUS_SHA256


def test_a_password_shorter_than_the_policy_is_refused(moto_server):
    cognito = moto_server.client("cognito-idp")
    pool, _ = accounts.create_pool(cognito, "short-passwords")
    try:
        with pytest.raises(accounts.AccountError, match="(?i)password"):
            accounts.create_user(cognito, pool, "x@example.com", "elevenchars")
        assert accounts.create_user(cognito, pool, "x@example.com", "twelve chars")["status"] == "CONFIRMED"
    finally:
        cognito.delete_user_pool(UserPoolId=pool)
