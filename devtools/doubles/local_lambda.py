"""Lambda's Invoke API on loopback, for the vendor relay (``make run`` and the tests).

``chalice local`` serves routes only, and moto's Lambda runs code in Docker, which this
machine has not: so the relay's code runs here, behind the same HTTP API the SDK calls
(``POST /2015-03-31/functions/{name}/invocations``), and the callers go the way they go
on AWS: botocore's ``invoke``, then the relay's ``handle``. The relay reads its own
settings from the environment it is given (the vendor's address and key).

A function name it does not serve answers Lambda's 404 ``ResourceNotFoundException``;
the relay raising answers as Lambda does, 200 with ``X-Amz-Function-Error: Unhandled``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


class LocalLambda:
    def __init__(self, functions: dict, port: int = 0, host: str = "127.0.0.1"):
        """``functions``: name (or ARN) -> a callable taking the event and returning the answer."""
        self.functions = functions
        self.invocations = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b"{}"
                match = INVOKE.match(self.path.split("?")[0])
                name = match.group(1).rsplit(":", 1)[-1] if match else ""
                function = outer.functions.get(name)
                if function is None:
                    error = {"Type": "User", "message": f"Function not found: {name}"}
                    return self._answer(404, error, {"x-amzn-ErrorType": "ResourceNotFoundException"})
                outer.invocations += 1
                try:
                    result = function(json.loads(body or b"{}"))
                except Exception as exc:  # noqa: BLE001 - answered as Lambda answers a function that raised
                    error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
                    return self._answer(200, error, {"X-Amz-Function-Error": "Unhandled"})
                return self._answer(200, result, {"X-Amz-Executed-Version": "$LATEST"})

            def _answer(self, status: int, payload, headers: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="local-lambda")
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def relay_function_name(stage: str = "dev") -> str:
    """The relay's name, as Chalice names a function of the quote app on ``stage``."""
    return f"market-quote-{stage}-vendor-relay"


def serve_relay(env: dict, port: int = 0) -> LocalLambda:
    """The quote app's vendor relay, with the settings ``env`` gives it (the vendor's
    address and key), under its own name."""
    from quote.chalicelib.vendor_relay import VendorRelay
    from shared.config import Settings

    relay = VendorRelay(Settings.from_env(env))
    return LocalLambda({relay_function_name(env.get("STAGE", "dev")): relay.handle}, port)
