"""Writing the lake: ingestion and the daily update only (the serving API never writes).

Writes replace an object whole: S3 ``PutObject`` is atomic, and a local file is
written under a hidden name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import uuid
from datetime import date

from shared.bars import DailyBar
from shared.lake_layout import FILE, TABLE

from .lake import BASIS_KEY, Lake, LocalStore, S3Store, actions_key_for, key_for


def put(store, key: str, data: bytes) -> None:
    store.requests += 1
    if isinstance(store, S3Store):
        store.client.put_object(Bucket=store.bucket, Key=store.key(key), Body=data)
        return
    assert isinstance(store, LocalStore)
    path = f"{store.root}/{key}"
    folder, name = path.rsplit("/", 1)
    store.fs.create_dir(folder, recursive=True)
    # A leading dot hides the partial file from pyarrow, DuckDB and Athena.
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex}"
    with store.fs.open_output_stream(temporary) as f:
        f.write(data)
    store.fs.move(temporary, path)


def list_keys(store, prefix: str) -> list[str]:
    if isinstance(store, S3Store):
        out: list[str] = []
        start = len(store.key(""))
        for page in store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=store.key(prefix)
        ):
            store.requests += 1
            out.extend(item["Key"][start:] for item in page.get("Contents", []))
        return out
    from pyarrow import fs

    try:
        infos = store.fs.get_file_info(fs.FileSelector(f"{store.root}/{prefix}", recursive=True))
    except FileNotFoundError:
        return []
    return [i.path[len(store.root) + 1 :] for i in infos if i.type == fs.FileType.File]


def _table(bars: list[DailyBar], basis: str = "raw"):
    import pyarrow as pa

    table = pa.table(
        {
            "date": pa.array([b.day for b in bars], pa.date32()),
            "open": pa.array([b.open for b in bars], pa.float64()),
            "high": pa.array([b.high for b in bars], pa.float64()),
            "low": pa.array([b.low for b in bars], pa.float64()),
            "close": pa.array([b.close for b in bars], pa.float64()),
            "volume": pa.array([b.volume for b in bars], pa.float64()),
        }
    )
    return table.replace_schema_metadata({BASIS_KEY: basis.encode()})


def _put_table(lake: Lake, symbol: str, table) -> None:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    put(lake.store, key_for(symbol), sink.getvalue())


def write(lake: Lake, symbol: str, bars: list[DailyBar], basis: str = "raw") -> None:
    """Replace a symbol's whole history file (raw bars, unless told otherwise)."""
    _put_table(lake, symbol, _table(sorted(bars, key=lambda b: b.day), basis))


def write_actions(lake: Lake, symbol: str, actions: list) -> bool:
    """Replace a symbol's corporate actions, if they changed; returns whether written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shared.adjustment import CorporateAction

    wanted = sorted(set(actions), key=lambda a: (a.day, a.kind, a.ref))
    stored = lake.actions(symbol)
    # Written even when there are none: the object says the symbol's actions are known.
    if stored is not None and sorted(set(stored), key=lambda a: (a.day, a.kind, a.ref)) == wanted:
        return False
    types = {
        "symbol": pa.string(),
        "kind": pa.string(),
        "day": pa.date32(),
        "split_from": pa.float64(),
        "split_to": pa.float64(),
        "amount": pa.float64(),
        "dividend_type": pa.string(),
        "currency": pa.string(),
        "prev_close": pa.float64(),
        "prev_day": pa.date32(),
        "ref": pa.string(),
        "adjustment_type": pa.string(),
    }
    table = pa.table(
        {name: pa.array([getattr(a, name) for a in wanted], types[name]) for name in CorporateAction._fields}
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    put(lake.store, actions_key_for(symbol), sink.getvalue())
    return True


def symbols(lake: Lake) -> list[str]:
    out = []
    for key in list_keys(lake.store, f"{TABLE}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[1].startswith("symbol=") and parts[2] == FILE:
            out.append(parts[1][len("symbol=") :])
    return sorted(out)


def merge(existing: list[DailyBar], incoming: list[DailyBar]) -> list[DailyBar]:
    """Existing bars with incoming ones added or replacing the same day."""
    by_day: dict[date, DailyBar] = {b.day: b for b in existing}
    by_day.update((b.day, b) for b in incoming)
    return [by_day[d] for d in sorted(by_day)]


class LakeBehind(Exception):
    """The object ends before the day the new bars must join (an earlier write failed)."""

    def __init__(self, symbol: str, last: date):
        super().__init__(f"the lake's {symbol} ends on {last}")
        self.last = last


def append(lake: Lake, symbol: str, bars: list[DailyBar], joins_after: date | None = None) -> bool:
    """Add (or correct) bars in a symbol's history; rewrites the object only if that
    changes it. Returns whether it was written.

    With ``joins_after``, new bars after the object's end must follow that day:
    an object ending earlier raises ``LakeBehind`` rather than get a hole.

    The daily case (bars after the last stored day) stays in Arrow: the object is
    decoded, the new rows added and encoded again, without turning the symbol's
    whole history into Python objects (4 times less work a symbol, make bench).
    Anything else (a correction, a day inside the history) merges row by row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .lake import NOT_MODIFIED

    data, _ = lake.store.get(key_for(symbol))
    if data is None or data is NOT_MODIFIED:
        found = lake.read_with_basis(symbol)
        existing, basis = found if found else ([], "raw")
        merged = merge(existing, bars)
        if merged == existing:
            return False
        write(lake, symbol, merged, basis)
        return True
    table = pq.read_table(io.BytesIO(data))
    new = sorted(bars, key=lambda b: b.day)
    last = pc.max(table.column("date")).as_py() if table.num_rows else None
    if last is not None and new and new[0].day > last:
        if joins_after is not None and last < joins_after:
            raise LakeBehind(symbol, last)
        # The object's own basis, and the current column types (an old object's volumes
        # are int64: the new ones may be fractional, so the old ones are widened).
        basis = (table.schema.metadata or {}).get(BASIS_KEY, b"split").decode()
        added = _table(new, basis)
        _put_table(lake, symbol, pa.concat_tables([table.cast(added.schema), added]))
        return True
    from .lake import decode_with_basis

    existing, basis = decode_with_basis(data)
    merged = merge(existing, bars)
    if merged == existing:
        return False
    write(lake, symbol, merged, basis)
    return True
