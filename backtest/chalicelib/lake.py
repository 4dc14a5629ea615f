"""The full-history tier: one Parquet object per symbol, hive-style.

Layout under ``LAKE_URI`` (``s3://bucket/prefix`` or ``file:///path``)::

    daily_bars/symbol=AAPL/data.parquet
    daily_bars/symbol=BRK.B/data.parquet

Each file holds a symbol's whole history sorted by date, columns ``date``
(date32), ``open``, ``high``, ``low``, ``close`` (float64), ``volume`` (int64);
``symbol`` is the partition key in the path. pyarrow (``partitioning="hive"``),
DuckDB (``read_parquet('.../daily_bars/*/*.parquet', hive_partitioning=1)``)
and Athena (partitioned by ``symbol``) read it as it is.

One symbol's history is one object, read with one request: on S3 a single
``GetObject``. pyarrow's own S3 file system was measured making 3 HEAD and
2 GET requests for ``read_table`` and a HEAD before every GET even for
``open_input_stream``, so S3 goes through boto3 (which the Lambda runtime
provides); a local lake goes through ``pyarrow.fs``. Writing is in
``lake_writer`` (used by ingestion only, so the serving Lambda's code, and its
IAM policy, can only read).
"""

from __future__ import annotations

import io
from datetime import date
from typing import Protocol
from urllib.parse import urlparse

from shared.bars import DailyBar, make_bar

TABLE = "daily_bars"
FILE = "data.parquet"


class ObjectStore(Protocol):
    def get(self, key: str) -> bytes | None: ...


class S3Store:
    def __init__(self, bucket: str, prefix: str, client):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.requests = 0  # for benchmarks and tests: requests this store has made

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> bytes | None:
        self.requests += 1
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None


class LocalStore:
    def __init__(self, root: str):
        from pyarrow import fs

        self.fs = fs.LocalFileSystem()
        self.root = root.rstrip("/")
        self.requests = 0

    def get(self, key: str) -> bytes | None:
        self.requests += 1
        try:
            with self.fs.open_input_stream(f"{self.root}/{key}") as f:
                return f.read()
        except FileNotFoundError:
            return None


def open_store(uri: str, s3_endpoint_url: str = "", region: str = "us-east-1", credentials=None) -> ObjectStore:
    parts = urlparse(uri)
    if parts.scheme == "s3":
        from botocore.config import Config

        from shared.runtime import botocore_client

        client = botocore_client(
            "s3",
            endpoint_url=s3_endpoint_url or None,
            region_name=region,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}),
            **(credentials or {}),
        )
        return S3Store(parts.netloc, parts.path, client)
    if parts.scheme == "file":
        return LocalStore(parts.path)
    raise ValueError(f"LAKE_URI must be s3://bucket/prefix or file:///path, got {uri!r}")


def key_for(symbol: str) -> str:
    return f"{TABLE}/symbol={symbol}/{FILE}"


class Lake:
    def __init__(self, store: ObjectStore):
        self.store = store

    def read(self, symbol: str, start: date | None = None, end: date | None = None) -> list[DailyBar] | None:
        """A symbol's history (within ``start``..``end`` if given), or None when
        the lake has never heard of the symbol."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        data = self.store.get(key_for(symbol))
        if data is None:
            return None
        table = pq.read_table(io.BytesIO(data))
        if start is not None:
            table = table.filter(pc.greater_equal(table.column("date"), start))
        if end is not None:
            table = table.filter(pc.less_equal(table.column("date"), end))
        # Arrow's own date32 -> datetime.date conversion is ~20x slower than
        # going through ISO strings and the C date parser.
        days = map(date.fromisoformat, table.column("date").cast("string").to_pylist())
        columns = [table.column(name).to_pylist() for name in ("open", "high", "low", "close", "volume")]
        return list(map(make_bar, zip(days, *columns)))
