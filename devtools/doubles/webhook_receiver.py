"""A webhook endpoint on loopback, as a user's own server would be: ``make run`` and
the tests subscribe users' webhook channels to it and see what SNS delivers.

``POST /hooks/<name>`` takes an SNS HTTP notification (the JSON envelope whose
``Message`` is the signed alerts message, ``alerts/chalicelib/notify.py``), keeps
it under ``<name>``, and checks the signature when it knows that name's secret.
A real receiver must also answer SNS's ``SubscriptionConfirmation`` by fetching its
``SubscribeURL`` (moto confirms every subscription itself, so none arrives here).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alerts.chalicelib.notify import SignatureError, verify


class WebhookReceiver:
    def __init__(self, port: int = 0, on_delivery=None):
        self.secrets: dict[str, str] = {}
        self._got: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        self._on_delivery = on_delivery
        handler = type("Handler", (_Handler,), {"receiver": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True, name="webhooks").start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def expect(self, name: str, secret: str) -> None:
        """Check the signature of what arrives for ``name`` with ``secret``."""
        with self._lock:
            self.secrets[name] = secret

    def deliveries(self, name: str) -> list[dict]:
        """Everything ``name`` received, oldest first: the envelope, and the payload with
        whether its signature held (None: no secret known for it)."""
        with self._lock:
            return list(self._got.get(name, []))

    def clear(self) -> None:
        with self._lock:
            self._got.clear()

    def take(self, name: str, body: bytes) -> None:
        try:
            envelope = json.loads(body)
            message = envelope["Message"]
        except (ValueError, KeyError, TypeError):
            envelope, message = {"raw": body.decode(errors="replace")}, None
        with self._lock:
            secret = self.secrets.get(name)
        payload, signature_ok = None, None
        if message is not None:
            try:
                payload = verify(secret, message) if secret else json.loads(json.loads(message)["payload"])
                signature_ok = True if secret else None
            except (SignatureError, ValueError, KeyError, TypeError):
                signature_ok = False
        delivery = {"envelope": envelope, "payload": payload, "signature_ok": signature_ok}
        with self._lock:
            self._got.setdefault(name, []).append(delivery)
        if self._on_delivery:
            self._on_delivery(name, delivery)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if not path.startswith("/hooks/") or len(path) == len("/hooks/"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.receiver.take(path[len("/hooks/") :], body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass
