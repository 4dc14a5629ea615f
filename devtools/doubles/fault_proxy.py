"""An HTTP proxy that forwards to a real server and fails chosen requests on purpose.

Tests put it between boto3 and moto's server to make DynamoDB throttle or SNS
answer 500, over real HTTP, without patching any client. A fault can also be an
answer that comes late (``late_s``): the request reaches the server and is done
there, and its answer is held back, as when the network stalls after sending.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}

DYNAMODB_THROTTLE = (
    400,
    {"Content-Type": "application/x-amz-json-1.0"},
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
    b'"message":"The level of configured provisioned throughput for the table was exceeded."}',
)
SNS_INTERNAL_ERROR = (
    500,
    {"Content-Type": "text/xml"},
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code>"
    b"<Message>Internal failure</Message></Error><RequestId>fault</RequestId></ErrorResponse>",
)


@dataclass
class Fault:
    marker: bytes  # fail requests whose target header or body contains this
    response: tuple[int, dict, bytes] | None  # None: the server's own answer
    times: int | None  # None: until cleared
    hits: int = 0
    late_s: float = 0.0  # hold the answer back this long


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = urlparse(upstream)
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(
        self, marker: str, response: tuple[int, dict, bytes] | None = None, times: int | None = None, late_s: float = 0
    ) -> Fault:
        fault = Fault(marker.encode(), response, times, late_s=late_s)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def match(self, target: bytes, body: bytes) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.marker in target or fault.marker in body:
                    if fault.times is not None and fault.hits >= fault.times:
                        continue
                    fault.hits += 1
                    return fault
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _relay(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = (self.headers.get("X-Amz-Target") or "").encode()
        fault = self.proxy.match(target, body)
        if fault is not None and fault.response is not None:
            status, headers, payload = fault.response
        else:
            upstream = self.proxy.upstream
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            headers_out = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body, headers=headers_out)
            response = conn.getresponse()
            status, payload = response.status, response.read()
            headers = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
            conn.close()
        if fault is not None and fault.late_s:
            import time

            time.sleep(fault.late_s)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay  # noqa: N815 - the stdlib's names

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


# ---------------------------------------------------------------- servers that misbehave at the socket


class FaultyServer:
    """A TCP server on loopback that fails every connection one way:

    - ``"hang"``: accepts and reads, and never answers (the client's timeout must end it);
    - ``"garbage"``: answers bytes no protocol means (for HTTP, an HTTP 200 whose body is
      not what the client expects, so that its parser, not its transport, meets it).

    ``closed_port()`` is the third way: nothing listens there at all.
    """

    GARBAGE = b"\x00\x17\xffnot a protocol\r\n\x9c\x01garbage\r\n"

    def __init__(self, behaviour: str, http: bool = False):
        import socket

        assert behaviour in ("hang", "garbage")
        self.behaviour, self.http = behaviour, http
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._open: list = []
        self._stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True, name=f"faulty-{behaviour}").start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn) -> None:
        try:
            conn.settimeout(30)
            if self.behaviour == "hang":
                while not self._stopped.is_set() and conn.recv(65536):
                    pass
                return
            if self.http:
                conn.recv(65536)
                body = self.GARBAGE * 4
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
            else:
                conn.sendall(self.GARBAGE)
        except OSError:
            pass
        finally:
            if self.behaviour != "hang":
                conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self._sock.close()
        for conn in self._open:
            try:
                conn.close()
            except OSError:
                pass


def closed_port() -> int:
    """A loopback port nothing listens on (bound a moment, then let go)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Canned answers of each AWS service when it throttles (what boto sees after its retries).
DYNAMODB_THROTTLING = (
    400,
    {"Content-Type": "application/x-amz-json-1.0"},
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}',
)
SNS_THROTTLED = (
    400,
    {"Content-Type": "text/xml"},
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttled</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>fault</RequestId></ErrorResponse>",
)
S3_SLOW_DOWN = (
    503,
    {"Content-Type": "application/xml"},
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>",
)
JWKS_THROTTLED = (429, {"Content-Type": "application/json"}, b'{"message":"Too many requests"}')
# Lambda's answer to an Invoke over the function's or the account's concurrency.
LAMBDA_THROTTLED = (
    429,
    {"Content-Type": "application/json", "x-amzn-ErrorType": "TooManyRequestsException"},
    b'{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}',
)
