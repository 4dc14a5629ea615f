"""The vendor relay's side (the quote app's ``vendor-relay`` function): one vendor
request per invocation, for the functions in the VPC (``shared.vendor_relay`` is theirs).

It only ever asks the configured vendor (no other host: it is not a general proxy),
puts the key on the request itself (the callers have none), never retries (they
decide, and charge each attempt to the shared budget), and logs one line per call.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import zlib
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# Response headers the callers read (a 429's Retry-After); the rest stay behind.
KEPT_HEADERS = ("Retry-After", "Content-Type")


class VendorRelay:
    """The relay function's work: one vendor request per invocation."""

    def __init__(self, settings, pool=None):
        self.settings = settings
        base = urlsplit(settings.polygon_base_url)
        self.origin = (base.scheme, base.netloc)
        self._pool = pool
        self._lock = threading.Lock()

    @property
    def pool(self):
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    import urllib3

                    self._pool = urllib3.PoolManager(
                        maxsize=16,
                        retries=False,
                        timeout=urllib3.Timeout(
                            connect=self.settings.polygon_connect_timeout_s, read=self.settings.polygon_read_timeout_s
                        ),
                    )
        return self._pool

    def handle(self, event: dict) -> dict:
        url = event.get("url") if isinstance(event, dict) else None
        if not isinstance(url, str) or event.get("method") != "GET":
            return _error("refused", "the relay makes GET requests to the vendor only")
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self.origin:
            return _error("refused", f"the relay asks {self.origin[1]} only, not {parts.netloc or 'that'}")
        headers = {
            "Authorization": f"Bearer {self.settings.polygon_api_key or 'local-dev-key'}",
            "Accept-Encoding": "gzip",
            "User-Agent": "market-data vendor-relay",
        }
        started = time.perf_counter()
        try:
            response = self.pool.request("GET", url, headers=headers, redirect=False)
        except Exception as exc:  # noqa: BLE001 - every way the request can fail is an answer to give back
            slow = "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower()
            log.warning("vendor GET %s: %s", parts.path, type(exc).__name__)
            return _error(
                "timeout" if slow else "unreachable", f"the vendor {'timed out' if slow else 'is unreachable'}"
            )
        log.info(
            "vendor GET %s %s",
            parts.path,
            response.status,
            extra={"vendor_status": response.status, "latency_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        return {
            "status": response.status,
            "headers": {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers},
            # Compressed: a whole market's grouped bars are ~1 MB of JSON, under Lambda's
            # 6 MB answer either way, but a tenth of it to carry.
            "body": base64.b64encode(zlib.compress(response.data)).decode(),
        }


def _error(kind: str, message: str) -> dict:
    return {"error": {"kind": kind, "message": message}}
