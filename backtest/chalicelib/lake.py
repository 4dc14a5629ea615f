"""The full-history tier: one Parquet object per symbol, hive-style.

Layout under ``LAKE_URI`` (``s3://bucket/prefix`` or ``file:///path``)::

    daily_bars/symbol=AAPL/data.parquet
    daily_bars/symbol=BRK.B/data.parquet
    corporate_actions/symbol=AAPL/data.parquet

The bars are raw, as traded; an object says so in its Parquet metadata
(``basis``: ``raw``); one written before, without it, is split-adjusted as the
vendor gave it (``split``). ``corporate_actions`` holds every split and dividend
of the symbol (columns as ``shared.adjustment.CorporateAction``), so the lake
alone can answer any adjustment.

Each file holds a symbol's whole history sorted by date, columns ``date``
(date32), ``open``, ``high``, ``low``, ``close``, ``volume`` (float64: the vendor's
volumes can be fractional; objects written before that have int64, read the same);
``symbol`` is the partition key in the path. pyarrow (``partitioning="hive"``),
DuckDB (``read_parquet('.../daily_bars/*/*.parquet', hive_partitioning=1)``)
and Athena (partitioned by ``symbol``) read it as it is.

One symbol's history is one object, read with one request: on S3 a single
``GetObject``. pyarrow's own S3 file system was measured making 3 HEAD and
2 GET requests for ``read_table`` and a HEAD before every GET even for
``open_input_stream``, so S3 goes through boto3 (which the Lambda runtime
provides); a local lake goes through ``pyarrow.fs``. Writing is in
``lake_writer``, reached only from ingestion and the ``daily-update`` function
(which has its own role): the API function's IAM policy can only read.
"""

from __future__ import annotations

import enum
import io
from datetime import date
from typing import Protocol
from urllib.parse import urlparse

from shared.bars import DailyBar, make_bar
from shared.lake_layout import actions_key, bars_key

BASIS_KEY = b"basis"


# What ``get`` answers when the object still has the version the caller holds.
class _Unchanged(enum.Enum):
    NOT_MODIFIED = "not modified"


# What a conditional get answers when the object is still the version asked about.
NOT_MODIFIED = _Unchanged.NOT_MODIFIED
Fetched = tuple[bytes | _Unchanged | None, str | None]


class ObjectStore(Protocol):
    def get(self, key: str, version: str | None = None) -> Fetched:
        """(the bytes, their version); (None, None) when there is no such object;
        (NOT_MODIFIED, version) when ``version`` is still the object's."""


class S3Store:
    dependency = "s3"  # what a failure names (shared.errors.DEPENDENCIES)

    def __init__(self, bucket: str, prefix: str, client):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.requests = 0  # for benchmarks and tests: requests this store has made

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str, version: str | None = None) -> Fetched:
        """One GetObject, conditional on ``version`` (the ETag) when given."""
        from botocore.exceptions import ClientError

        self.requests += 1
        conditional = {"IfNoneMatch": version} if version else {}
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(key), **conditional)
        except self.client.exceptions.NoSuchKey:
            return None, None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("304", "NotModified"):
                return NOT_MODIFIED, version
            raise
        return answer["Body"].read(), answer.get("ETag")


class LocalStore:
    dependency = None  # a folder of this machine's

    def __init__(self, root: str):
        from pyarrow import fs

        self.fs = fs.LocalFileSystem()
        self.root = root.rstrip("/")
        self.requests = 0

    def get(self, key: str, version: str | None = None) -> Fetched:
        """The file, unless its modification time and size are still ``version``."""
        from pyarrow import fs

        self.requests += 1
        path = f"{self.root}/{key}"
        info = self.fs.get_file_info(path)
        if info.type != fs.FileType.File:
            return None, None
        current = f"{info.mtime_ns}:{info.size}"
        if current == version:
            return NOT_MODIFIED, version
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read(), current
        except FileNotFoundError:
            return None, None


def open_store(
    uri: str,
    s3_endpoint_url: str = "",
    region: str = "us-east-1",
    credentials=None,
    timeouts: tuple[float, float, int] = (1.0, 5.0, 3),
) -> ObjectStore:
    """``timeouts``: (connect s, read s, attempts in all) for S3, so that a lake that
    hangs answers a 503 inside the API function's time, not never."""
    parts = urlparse(uri)
    if parts.scheme == "s3":
        from botocore.config import Config

        from shared.runtime import botocore_client

        connect_s, read_s, attempts = timeouts
        client = botocore_client(
            "s3",
            endpoint_url=s3_endpoint_url or None,
            region_name=region,
            config=Config(
                connect_timeout=connect_s,
                read_timeout=read_s,
                retries={"total_max_attempts": attempts, "mode": "standard"},
            ),
            **(credentials or {}),
        )
        return S3Store(parts.netloc, parts.path, client)
    if parts.scheme == "file":
        return LocalStore(parts.path)
    raise ValueError(f"LAKE_URI must be s3://bucket/prefix or file:///path, got {uri!r}")


key_for = bars_key
actions_key_for = actions_key


class Lake:
    """Reads a symbol's history, keeping the last ``keep`` symbols' histories decoded.

    Every read still asks the store (one request), conditionally on the version
    held: an unchanged object answers 304 and is not transferred, decoded or
    converted again; a changed one is read whole. So a history is never older
    than the object, and a warm container spends no CPU on the popular ones.
    """

    def __init__(self, store: ObjectStore, keep: int = 16):
        import threading
        from collections import OrderedDict

        self.store = store
        self.keep = keep
        self._held: OrderedDict[str, tuple[str | None, list[DailyBar], list[date], str]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, symbol: str, start: date | None = None, end: date | None = None) -> list[DailyBar] | None:
        """A symbol's history (within ``start``..``end`` if given), or None when
        the lake has never heard of the symbol."""
        found = self.read_with_basis(symbol, start, end)
        return found[0] if found else None

    def read_with_basis(self, symbol: str, start: date | None = None, end: date | None = None):
        """(bars, their basis: "raw" or "split"), or None when the lake has no such symbol."""
        from bisect import bisect_left, bisect_right

        with self._lock:
            held = self._held.get(symbol)
        data, version = self.store.get(key_for(symbol), held[0] if held else None)
        if data is None:
            with self._lock:
                self._held.pop(symbol, None)
            return None
        if data is NOT_MODIFIED:
            assert held is not None  # only a version held is asked about
            _, bars, days, basis = held
        else:
            bars, basis = decode_with_basis(data)
            days = [b.day for b in bars]
            if version and self.keep:
                with self._lock:
                    self._held[symbol] = (version, bars, days, basis)
                    while len(self._held) > self.keep:
                        self._held.popitem(last=False)
        with self._lock:
            if symbol in self._held:
                self._held.move_to_end(symbol)
        low = bisect_left(days, start) if start is not None else 0
        high = bisect_right(days, end) if end is not None else len(days)
        return bars[low:high], basis

    def actions(self, symbol: str) -> list | None:
        """Every stored split and dividend of the symbol; None when the lake holds none
        for it at all (not even the note that it has none)."""
        data, _ = self.store.get(actions_key_for(symbol))
        if data is None or data is NOT_MODIFIED:
            return None
        return decode_actions(data)


def decode(data: bytes) -> list[DailyBar]:
    return decode_with_basis(data)[0]


def decode_actions(data: bytes) -> list:
    import pyarrow.parquet as pq

    from shared.adjustment import CorporateAction

    table = pq.read_table(io.BytesIO(data))
    # An object written before a field existed (adjustment_type) reads it as unknown.
    columns = {
        name: table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows
        for name in CorporateAction._fields
    }
    return [CorporateAction(*row) for row in zip(*(columns[n] for n in CorporateAction._fields))]


def decode_with_basis(data: bytes) -> tuple[list[DailyBar], str]:
    """A lake file's bars, sorted by date (the writer sorts them), and their basis."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    metadata = table.schema.metadata or {}
    basis = metadata.get(BASIS_KEY, b"split").decode()
    # Arrow's own date32 -> datetime.date conversion is ~20x slower than
    # going through ISO strings and the C date parser.
    days = map(date.fromisoformat, table.column("date").cast("string").to_pylist())
    columns = [table.column(name).cast("float64").to_pylist() for name in ("open", "high", "low", "close", "volume")]
    return list(map(make_bar, zip(days, *columns))), basis
