"""Which symbols the product keeps history for: a rule may only watch one of those.

A rule on a symbol with no history could never be evaluated: it would fail at every
check, said only as a ``last_error`` its owner may never read. So creating (or moving)
a rule asks the lake whether the symbol's history object exists: one HEAD request
(``s3:GetObject`` on the lake's ``daily_bars/`` objects, nothing else), answered from
the object's existence alone. The alerts API runs outside the VPC, so PostgreSQL is
not asked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

from shared.lake_layout import bars_key

log = logging.getLogger(__name__)


class HistoryIndex:
    def __init__(self, lake_uri: str, s3=None):
        parts = urlparse(lake_uri)
        self.scheme = parts.scheme
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.root = parts.path
        self.s3 = s3

    def has_history(self, symbol: str) -> bool:
        """Whether ``symbol``'s history is stored; a failing store raises (the caller's 503)."""
        key = bars_key(symbol)
        if self.scheme == "file":
            return (Path(self.root) / key).exists()
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}" if self.prefix else key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
