"""A page of bars as JSON, CSV (for backtesting.py) or Parquet."""

from __future__ import annotations

import csv
import io

import orjson

from .service import BarsPage

CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
# backtesting.py's Backtest wants exactly these columns, with the date as index;
# overlays, when asked for, follow them as SMA_50, EMA_20 (names it can use as
# self.data.SMA_50).
COLUMNS = ["Date", "Open", "High", "Low", "Close", "Volume"]


def overlay_column(name: str) -> str:
    kind, n = name.rstrip(")").split("(")
    return f"{kind.upper()}_{n}"


def _csv(page: BarsPage) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = list(page.overlays)
    writer.writerow(COLUMNS + [overlay_column(n) for n in names])
    columns = [page.overlays[n] for n in names]
    for i, b in enumerate(page.bars):
        extra = ["" if c[i] is None else c[i] for c in columns]
        writer.writerow([b["date"], b["open"], b["high"], b["low"], b["close"], b["volume"], *extra])
    return out.getvalue().encode()


def _parquet(page: BarsPage) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    bars = page.bars
    table = pa.table(
        {
            # Casting the ISO strings in Arrow is far cheaper than parsing them here.
            "Date": pa.array([b["date"] for b in bars], pa.string()).cast(pa.date32()),
            "Open": pa.array([b["open"] for b in bars], pa.float64()),
            "High": pa.array([b["high"] for b in bars], pa.float64()),
            "Low": pa.array([b["low"] for b in bars], pa.float64()),
            "Close": pa.array([b["close"] for b in bars], pa.float64()),
            "Volume": pa.array([b["volume"] for b in bars], pa.float64()),
            **{overlay_column(n): pa.array(values, pa.float64()) for n, values in page.overlays.items()},
        }
    )
    # What shaped these prices, where a reader of the file finds it (pq.read_schema(...).metadata).
    table = table.replace_schema_metadata(
        {
            b"adjustment": page.adjustment.encode(),
            b"corporate_actions": orjson.dumps(page.corporate_actions),
            b"symbol": page.symbol.encode(),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


# A header holds the range's splits and dividends for CSV and Parquet while it stays
# small; past that the JSON answer (or the Parquet file's metadata) has them all.
MAX_ACTIONS_HEADER = 6000


def action_headers(page: BarsPage, fmt: str) -> dict[str, str]:
    headers = {"X-Adjustment": page.adjustment}
    if fmt != "json":
        listed = orjson.dumps(page.corporate_actions).decode()
        if len(listed) <= MAX_ACTIONS_HEADER:
            headers["X-Corporate-Actions"] = listed
        else:
            headers["X-Corporate-Actions-Omitted"] = str(len(page.corporate_actions))
    return headers


def encode(page: BarsPage, fmt: str) -> bytes:
    if fmt == "csv":
        return _csv(page)
    if fmt == "parquet":
        return _parquet(page)
    return orjson.dumps(page.to_json())
