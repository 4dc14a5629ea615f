"""The callers' side of the vendor relay: the vendor, reached whether or not it answers
over IPv6.

The functions that need Redis or PostgreSQL run in the VPC, whose subnets reach the
internet over IPv6 only (an egress-only gateway: no NAT gateway, see the README). A
vendor without IPv6 would be out of their reach. So they do not call it: each HTTP
request the official client builds is handed, as it is, to one small function
outside the VPC (the quote app's ``vendor-relay``, ``quote/chalicelib/vendor_relay.py``),
invoked over Lambda's dual-stack endpoint, which makes the request and hands back the
status, the headers that matter and the body. Everything else stays where it was: the
client builds the requests (its exact shapes), and the callers keep batching,
single-flight and the shared budget, and charge each attempt to it. Only the relay
holds the vendor's key.

``RelayPool`` stands in for the client's urllib3 pool: one ``Invoke`` per request. A
relay that cannot be reached, is throttled, fails or is too slow is the vendor
unavailable to the caller (``RelayUnavailable``, an ``OSError``, which
``shared.polygon.translate`` maps like a refused connection).
"""

from __future__ import annotations

import base64
import json
import zlib
from urllib.parse import urlencode

# The invoke waits this much longer than the relay may take over the vendor's answer.
INVOKE_MARGIN_S = 2.0


class RelayUnavailable(OSError):
    """The relay, or the vendor behind it, gave no answer (unreachable, throttled, failed
    or too slow); "timed out" in the message when it was time that ran out."""


class RelayPool:
    """What the official client calls ``request`` on, relaying each request."""

    def __init__(self, function: str, lambda_client):
        self.function = function
        self.client = lambda_client

    def request(self, method: str, url: str, fields: dict | None = None, headers: dict | None = None, **_):
        import urllib3
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        # As urllib3 puts a GET's fields in its URL.
        full = url + ("?" + urlencode(fields) if fields else "")
        try:
            answer = self.client.invoke(
                FunctionName=self.function, Payload=json.dumps({"method": method, "url": full}).encode()
            )
            payload = json.loads(answer["Payload"].read())
        except (ConnectTimeoutError, ReadTimeoutError) as exc:
            raise RelayUnavailable(f"the vendor relay timed out: {type(exc).__name__}") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise RelayUnavailable(f"the vendor relay refused the call: {code}") from exc
        except (BotoCoreError, ValueError, KeyError) as exc:
            raise RelayUnavailable(f"the vendor relay could not be reached: {type(exc).__name__}") from exc
        if answer.get("FunctionError") or not isinstance(payload, dict):
            raise RelayUnavailable(f"the vendor relay failed: {str(payload)[:200]}")
        if "error" in payload:
            error = payload["error"]
            message = error.get("message", "the vendor relay could not ask the vendor")
            raise RelayUnavailable(message + (" (timed out)" if error.get("kind") == "timeout" else ""))
        try:
            body = zlib.decompress(base64.b64decode(payload["body"]))
            status = int(payload["status"])
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise RelayUnavailable(f"the vendor relay answered something unreadable: {exc}") from exc
        return urllib3.HTTPResponse(
            body=body, status=status, headers=payload.get("headers") or {}, preload_content=True
        )


def invoke_timeout_s(settings) -> float:
    """How long a caller waits for the relay: the vendor's connect and read, and a margin."""
    return settings.polygon_connect_timeout_s + settings.polygon_read_timeout_s + INVOKE_MARGIN_S
