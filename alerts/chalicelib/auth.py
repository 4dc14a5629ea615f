"""Bearer tokens: HS256 JWTs signed with ``AUTH_SECRET`` (PyJWT).

PyJWT is imported where a token is minted or verified: the authorizer does
that, the API handler (a separate Lambda) never does, and its cold start need
not pay the import.
"""

from __future__ import annotations

import re
import time

USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class AuthError(Exception):
    pass


def mint(secret: str, user: str, issuer: str, ttl_s: float = 30 * 86400, now: float | None = None) -> str:
    import jwt

    if not secret:
        raise AuthError("AUTH_SECRET is not set: cannot sign tokens")
    if not USER_ID.match(user):
        raise AuthError("a user id is 1-64 letters, digits or _ . @ -")
    issued = int(now if now is not None else time.time())
    claims = {"sub": user, "iss": issuer, "iat": issued, "exp": issued + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(secret: str, header: str | None, issuer: str) -> str:
    """The user of a valid ``Bearer`` token, or ``AuthError``."""
    import jwt

    if not secret:
        raise AuthError("authentication is not configured")
    if not header or not header.startswith("Bearer "):
        raise AuthError("expected 'Authorization: Bearer <token>'")
    try:
        claims = jwt.decode(
            header[len("Bearer ") :].strip(),
            secret,
            algorithms=["HS256"],  # never trust the token's own choice of algorithm
            issuer=issuer,
            options={"require": ["sub", "exp", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    user = claims["sub"]
    if not isinstance(user, str) or not USER_ID.match(user):
        raise AuthError("invalid token subject")
    return user
