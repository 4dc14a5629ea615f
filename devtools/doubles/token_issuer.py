"""A user pool's key set served on loopback, with tokens signed by a key of its own.

moto signs with one public key that only the local stage trusts (``alerts/chalicelib/auth.py``),
so an AWS stage's authorizer can be measured (make bench) and tested with a valid
token only against a key nobody else has: this one, made afresh for each issuer.
Its tokens carry what Cognito's do (``iss``, ``token_use``, ``client_id``, ``exp``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TokenIssuer:
    def __init__(self, pool_id: str, client_id: str, region: str = "us-east-1"):
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.pool_id, self.client_id, self.region = pool_id, client_id, region
        self.kid = uuid.uuid4().hex
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        self._jwks = json.dumps({"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}).encode()
        path = f"/{pool_id}/.well-known/jwks.json"
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                ok = self.path == path
                body = issuer._jwks if ok else b"{}"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="token-issuer").start()
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def token(self, sub: str, ttl_s: float = 3600) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}",
            "sub": sub,
            "client_id": self.client_id,
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "iat": now,
            "auth_time": now,
            "exp": now + int(ttl_s),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
