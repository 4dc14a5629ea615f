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
provides); a local lake goes through ``pyarrow.fs``. Writes replace an object
whole: S3 ``PutObject`` is atomic, and a local file is written under a hidden
name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import uuid
from datetime import date
from typing import Protocol
from urllib.parse import urlparse

from shared.bars import DailyBar, make_bar

TABLE = "daily_bars"
FILE = "data.parquet"


class ObjectStore(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, data: bytes) -> None: ...
    def list(self, prefix: str) -> list[str]: ...


class S3Store:
    def __init__(self, bucket: str, prefix: str, client):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.requests = 0  # for benchmarks and tests: requests this store has made

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> bytes | None:
        self.requests += 1
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def put(self, key: str, data: bytes) -> None:
        self.requests += 1
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def list(self, prefix: str) -> list[str]:
        out, start = [], len(self._key(""))
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            self.requests += 1
            out.extend(item["Key"][start:] for item in page.get("Contents", []))
        return out


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

    def put(self, key: str, data: bytes) -> None:
        self.requests += 1
        path = f"{self.root}/{key}"
        folder, name = path.rsplit("/", 1)
        self.fs.create_dir(folder, recursive=True)
        # A leading dot hides the partial file from pyarrow, DuckDB and Athena.
        temporary = f"{folder}/.{name}.{uuid.uuid4().hex}"
        with self.fs.open_output_stream(temporary) as f:
            f.write(data)
        self.fs.move(temporary, path)

    def list(self, prefix: str) -> list[str]:
        from pyarrow import fs

        base = f"{self.root}/{prefix}"
        try:
            infos = self.fs.get_file_info(fs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            return []
        return [i.path[len(self.root) + 1 :] for i in infos if i.type == fs.FileType.File]


def open_store(uri: str, s3_endpoint_url: str = "", region: str = "us-east-1") -> ObjectStore:
    parts = urlparse(uri)
    if parts.scheme == "s3":
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=s3_endpoint_url or None,
            region_name=region,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}),
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

    def write(self, symbol: str, bars: list[DailyBar]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        bars = sorted(bars, key=lambda b: b.day)
        table = pa.table(
            {
                "date": pa.array([b.day for b in bars], pa.date32()),
                "open": pa.array([b.open for b in bars], pa.float64()),
                "high": pa.array([b.high for b in bars], pa.float64()),
                "low": pa.array([b.low for b in bars], pa.float64()),
                "close": pa.array([b.close for b in bars], pa.float64()),
                "volume": pa.array([b.volume for b in bars], pa.int64()),
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="snappy")
        self.store.put(key_for(symbol), sink.getvalue())

    def symbols(self) -> list[str]:
        out = []
        for key in self.store.list(f"{TABLE}/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[1].startswith("symbol=") and parts[2] == FILE:
                out.append(parts[1][len("symbol=") :])
        return sorted(out)


def merge(existing: list[DailyBar], incoming: list[DailyBar]) -> list[DailyBar]:
    """Existing bars with incoming ones added or replacing the same day."""
    by_day: dict[date, DailyBar] = {b.day: b for b in existing}
    by_day.update((b.day, b) for b in incoming)
    return [by_day[d] for d in sorted(by_day)]
