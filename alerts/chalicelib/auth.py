"""Who is calling: Amazon Cognito's JWTs, verified in full (PyJWT).

A token is accepted only when all of this holds: it is RS256 and signed by a key
of the pool's published key set (JWKS, fetched on first use and kept); its
``iss`` is the pool; its ``token_use`` is ``access`` (with ``client_id`` the app
client) or ``id`` (with ``aud`` the app client); it has not expired. The caller
is the token's ``sub``, which never changes for an account (an email address can).

moto signs every token with one key that ships inside moto and is therefore
public (``kid`` "dummy"). Only the local stage (``dev``) may trust it: anywhere
else such a token is refused whatever key set the endpoint serves, so an AWS
stage pointed at a stand-in by mistake cannot be signed into by anyone who
has moto installed.

PyJWT is imported where a token is verified: only the authorizer (its own
Lambda function) does that, and the API handler's cold start need not pay for it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where tokens are checked: PyJWT costs a cold start
    from jwt import PyJWKClient, PyJWKSet

log = logging.getLogger(__name__)

# moto's signing key: its kid, and the SHA-256 of its RSA modulus (tests/test_accounts.py
# checks both against the key moto ships), so that a renamed copy is refused as well.
TEST_KEY_ID = "dummy"
TEST_KEY_MODULUS_SHA256 = "60ececf17e149ab77be01dedd94c3fb8a0c33c70d4a78b1c3807b097c7c506be"
LOCAL_STAGE = "dev"
# A Cognito sub is a UUID; anything else in that claim is not a Cognito token.
SUBJECT = re.compile(r"^[A-Za-z0-9-]{1,128}$")
MAX_TOKEN_BYTES = 8192
# Keys rotate rarely: keep a fetched key set for hours, and past that, if the
# endpoint cannot be reached, go on with the last one rather than refuse everyone.
KEY_SET_LIFESPAN_S = 6 * 3600


# The principal of a request whose token could not be checked (the key set cannot be
# had): it goes on, and the route answers 503 (``current_user``), since an authorizer
# itself can only allow or refuse. No Cognito sub has a colon in it.
UNVERIFIED = "unverified:keys-unavailable"


class InvalidToken(Exception):
    """The caller is not authenticated: the gateway answers 401."""


class KeysUnavailable(Exception):
    """The pool's key set could not be fetched and none is kept: nobody can be verified now."""


class Unauthorized(Exception):  # noqa: N818 - API Gateway's own word
    """What an authorizer raises for a 401: API Gateway answers 401 exactly when a
    TOKEN authorizer fails with the message "Unauthorized" (a denying policy would
    be a 403). ``shared/startup.py`` makes chalice local answer it the same way."""

    def __init__(self):
        super().__init__("Unauthorized")


def issuer(region: str, pool_id: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"


def modulus_sha256(public_key) -> str:
    """The SHA-256 of an RSA public key's modulus, big-endian (as a JWK's ``n`` holds it)."""
    n = public_key.public_numbers().n
    return hashlib.sha256(n.to_bytes((n.bit_length() + 7) // 8, "big")).hexdigest()


class TokenVerifier:
    """Verifies the pool's tokens; one per Lambda container (the key set is kept in it)."""

    def __init__(
        self, region: str, pool_id: str, client_id: str, stage: str, endpoint_url: str = "", timeout_s: float = 3.0
    ):
        if not pool_id or not client_id:
            raise ValueError("a user pool id and an app client id are needed to verify tokens")
        self.issuer = issuer(region, pool_id)
        base = (endpoint_url or f"https://cognito-idp.{region}.amazonaws.com").rstrip("/")
        self.jwks_url = f"{base}/{pool_id}/.well-known/jwks.json"
        self.client_id = client_id
        self.trust_test_key = stage == LOCAL_STAGE
        self.timeout_s = timeout_s
        self._client: PyJWKClient | None = None
        self._last_good: PyJWKSet | None = None  # the last key set fetched, used when a refresh fails
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> TokenVerifier:
        return cls(
            settings.aws_region,
            settings.cognito_user_pool_id,
            settings.cognito_client_id,
            settings.stage,
            settings.cognito_endpoint_url,
            settings.aws_connect_timeout_s + settings.aws_read_timeout_s,
        )

    def verify(self, header: str | None) -> str:
        """The ``sub`` of a valid ``Authorization: Bearer <token>``; ``InvalidToken``
        otherwise; ``KeysUnavailable`` when no key set can be had to check it with."""
        import jwt

        if not header or not header.startswith("Bearer "):
            raise InvalidToken("expected 'Authorization: Bearer <token>'")
        token = header[len("Bearer ") :].strip()
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("the token is too long")
        try:
            head = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"not a JWT: {exc}") from None
        # Never the token's own choice of algorithm: Cognito signs with RS256 only.
        if head.get("alg") != "RS256":
            raise InvalidToken(f"algorithm {head.get('alg')!r} is not RS256")
        kid = head.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key")
        if kid == TEST_KEY_ID and not self.trust_test_key:
            raise InvalidToken("signed by moto's public test key, which only the local stage trusts")
        key = self._key(kid)
        if not self.trust_test_key and modulus_sha256(key.key) == TEST_KEY_MODULUS_SHA256:
            raise InvalidToken("signed by moto's public test key, which only the local stage trusts")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuer,
                # The audience is checked below: access tokens carry client_id, not aud.
                options={"require": ["exp", "iat", "iss", "sub", "token_use"], "verify_aud": False},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
        use = claims.get("token_use")
        client = claims.get("client_id") if use == "access" else claims.get("aud") if use == "id" else None
        if use not in ("access", "id"):
            raise InvalidToken(f"token_use {use!r} is neither access nor id")
        if client != self.client_id:
            raise InvalidToken("the token was issued to another app client")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
            raise InvalidToken("the token's subject is not a Cognito user id")
        return subject

    def _key(self, kid: str):
        import jwt

        with self._lock:
            if self._client is None:
                # No network here: the first fetch happens on the first token.
                self._client = jwt.PyJWKClient(
                    self.jwks_url, cache_jwk_set=True, lifespan=KEY_SET_LIFESPAN_S, timeout=self.timeout_s
                )
            client = self._client
        try:
            key = client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            key = self._from_last_good(kid)
            if key is None:
                log.error("the user pool's key set is unreachable and none is kept: %s", exc)
                raise KeysUnavailable("the user pool's signing keys cannot be fetched now") from None
            log.warning("the user pool's key set is unreachable; using the one fetched before: %s", exc)
            return key
        except (jwt.PyJWKSetError, jwt.PyJWKError) as exc:
            # The endpoint answered something that is not a usable key set.
            key = self._from_last_good(kid)
            if key is None:
                log.error("the user pool's key set is unusable and none is kept: %s", exc)
                raise KeysUnavailable(f"the user pool's key set is unusable: {exc}") from None
            return key
        except jwt.PyJWKClientError as exc:
            if "Unable to find a signing key" not in str(exc):
                # Not an answer about the kid: the endpoint's answer was not a key set.
                raise KeysUnavailable(f"the user pool's key set is unusable: {exc}") from None
            # The kid is not in the pool's key set (after one refresh): not the pool's token.
            raise InvalidToken(f"not signed by the user pool: {exc}") from None
        with self._lock:
            self._last_good = client.get_jwk_set()
        return key

    def _from_last_good(self, kid: str):
        with self._lock:
            keys = self._last_good
        if keys is None:
            return None
        for key in keys.keys:
            if key.key_id == kid:
                return key
        return None
