"""The backtest API's OpenAPI 3.1 document, built from the constants its validation uses."""

from __future__ import annotations

from typing import Any

from shared import openapi as oa
from shared.adjustment import ADJUSTMENT_TYPES, ADJUSTMENTS, DEFAULT_ADJUSTMENT
from shared.bars import INTERVALS

from .formats import CONTENT_TYPES
from .service import DATE_PATTERN, DEFAULT_LIMIT, FORMATS, MAX_LIMIT, MAX_OVERLAYS, OVERLAYS_PATTERN, PERIODS

DATE = {"type": "string", "format": "date", "pattern": DATE_PATTERN}
PRICE = {"type": "number"}

DAILY_BAR: dict[str, Any] = {
    "type": "object",
    "required": ["date", "open", "high", "low", "close", "volume"],
    "additionalProperties": False,
    "properties": {
        "date": DATE,
        "open": PRICE,
        "high": PRICE,
        "low": PRICE,
        "close": PRICE,
        "volume": {"type": "number", "minimum": 0, "description": "a float: the vendor's volumes can be fractional"},
    },
}
N_DAY_BAR = {
    "type": "object",
    "description": "N consecutive trading sessions; only the last bar of an answer can be partial",
    "required": ["date", "end_date", "open", "high", "low", "close", "volume", "sessions", "partial"],
    "additionalProperties": False,
    "properties": {
        **DAILY_BAR["properties"],
        "end_date": DATE,
        "sessions": {"type": "integer", "minimum": 1, "maximum": max(INTERVALS.values())},
        "partial": {"type": "boolean"},
    },
}
PAGE = {
    "type": "object",
    "required": [
        "symbol",
        "interval",
        "adjustment",
        "start",
        "end",
        "source",
        "available",
        "bars",
        "overlays",
        "corporate_actions",
        "next_cursor",
    ],
    "additionalProperties": False,
    "properties": {
        "symbol": {"type": "string"},
        "interval": {"enum": sorted({"1d" if n == 1 else k for k, n in INTERVALS.items()})},
        "adjustment": {"enum": list(ADJUSTMENTS), "description": "what the prices and volumes are adjusted for"},
        "corporate_actions": {
            "type": "array",
            "description": "the splits and dividends from start to end, oldest first",
            "items": {"$ref": "#/components/schemas/CorporateAction"},
        },
        "start": DATE,
        "end": DATE,
        "source": {
            "enum": ["postgres", "lake", "lake+postgres"],
            "description": "the storage tiers the bars came from",
        },
        "available": {
            "description": "the symbol's whole stored history",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["first", "last"],
                    "additionalProperties": False,
                    "properties": {"first": DATE, "last": DATE},
                },
                {"type": "null"},
            ],
        },
        "bars": {
            "type": "array",
            "items": {"oneOf": [{"$ref": "#/components/schemas/DailyBar"}, {"$ref": "#/components/schemas/NDayBar"}]},
        },
        "overlays": {
            "type": "object",
            "description": "each overlay asked for: one value per bar (null while history is too short)",
            "additionalProperties": {"type": "array", "items": {"type": ["number", "null"]}},
        },
        "next_cursor": {"type": ["string", "null"], "description": "present exactly when more bars exist"},
    },
}


CORPORATE_ACTION = {
    "oneOf": [
        {
            "type": "object",
            "required": ["date", "type", "split_from", "split_to", "adjustment_type"],
            "additionalProperties": False,
            "properties": {
                "date": {**DATE, "description": "the execution date"},
                "type": {"const": "split"},
                "split_from": {"type": "number", "exclusiveMinimum": 0},
                "split_to": {"type": "number", "exclusiveMinimum": 0},
                "adjustment_type": {
                    "enum": list(ADJUSTMENT_TYPES),
                    "description": "the vendor's: a 5% stock dividend is split_from 100, split_to 105; for one "
                    "stored before the vendor said, forward or reverse as the ratio says",
                },
            },
        },
        {
            "type": "object",
            "required": ["date", "type", "amount", "dividend_type", "currency", "factor"],
            "additionalProperties": False,
            "properties": {
                "date": {**DATE, "description": "the ex-dividend date"},
                "type": {"const": "dividend"},
                "amount": {"type": "number", "description": "cash per share"},
                "dividend_type": {
                    "type": "string",
                    "description": "the vendor's distribution_type: recurring, special, supplemental, irregular "
                    "or unknown, all counted by adjustment=all (a dividend stored from the deprecated endpoint "
                    "says CD, SC, LT or ST until the next ingestion)",
                },
                "currency": {"type": ["string", "null"]},
                "factor": {
                    "type": ["number", "null"],
                    "description": "1 - amount / previous close: what adjustment=all multiplies earlier prices by "
                    "for this dividend (dividends of one ex-date combine as 1 - their sum / previous close; null: "
                    "not applied, e.g. no previous close known, not in USD)",
                },
            },
        },
    ]
}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def build() -> dict:
    intervals = list(INTERVALS)
    parameters = [
        {"name": "symbol", "in": "query", "required": True, "schema": oa.SYMBOL},
        _query("start", DATE, "first date, inclusive (default: one year before end)"),
        _query("end", DATE, "last date, inclusive (default: the latest stored bar)"),
        _query("period", {"enum": list(PERIODS)}, "instead of start: back from end, or all the stored history"),
        _query("interval", {"enum": intervals, "default": "1d"}, "daily bars, or N-day bars of N trading sessions"),
        _query(
            "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}, "bars per page"
        ),
        _query("cursor", {"type": "string", "minLength": 1}, "next_cursor of the previous page"),
        _query("format", {"enum": list(FORMATS), "default": "json"}, "parquet needs a matching Accept header"),
        _query(
            "adjustment",
            {"enum": list(ADJUSTMENTS), "default": DEFAULT_ADJUSTMENT},
            "raw: as traded; split: for splits (the vendor's adjusted=true); all: for splits and cash dividends "
            "(total return)",
        ),
        _query(
            "overlays",
            {"type": "string", "pattern": OVERLAYS_PATTERN},
            f"up to {MAX_OVERLAYS} of sma(n), ema(n) with 1 <= n <= 200, on daily closes",
        ),
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "an ETag of an earlier answer: 304 when it still holds",
        },
    ]
    page_headers = {
        "Cache-Control": oa.CACHE_CONTROL,
        "X-Source": {
            "required": True,
            "schema": {"enum": ["postgres", "lake", "lake+postgres"]},
            "description": "the storage tiers the bars came from",
        },
        "X-Next-Cursor": {
            "required": False,
            "schema": {"type": "string"},
            "description": "the next page's cursor (the only place for it in CSV and Parquet)",
        },
        "ETag": {
            "required": False,
            "schema": {"type": "string"},
            "description": "on answers whose range ends in the past: then max-age=86400 for raw prices, and until "
            "the next daily update (which alone stores new splits and dividends) for adjusted ones",
        },
        "X-Adjustment": {"required": True, "schema": {"enum": list(ADJUSTMENTS)}, "description": "as asked"},
        "X-Corporate-Actions": {
            "required": False,
            "schema": {"type": "string"},
            "description": "CSV and Parquet: the range's splits and dividends as JSON, while under 6 KB "
            "(Parquet also holds them in its schema metadata)",
        },
        "X-Corporate-Actions-Omitted": {
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
            "description": "how many actions the header would have held: ask format=json for them",
        },
    }
    operation = {
        "operationId": "getBars",
        "summary": "Daily or Fibonacci N-day bars of a symbol over a date range, page by page",
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "a page of bars",
                "headers": page_headers,
                "content": {
                    CONTENT_TYPES["json"]: {"schema": {"$ref": "#/components/schemas/BarsPage"}},
                    "text/csv": {"schema": {"type": "string"}},
                    CONTENT_TYPES["parquet"]: {
                        "schema": {"type": "string", "contentMediaType": CONTENT_TYPES["parquet"]}
                    },
                },
            },
            "304": {
                "description": "the If-None-Match ETag still holds",
                "headers": {
                    "ETag": {"required": True, "schema": {"type": "string"}},
                    "Cache-Control": oa.CACHE_CONTROL,
                },
            },
            "400": oa.error_answer(
                "bad input",
                [
                    "missing_symbol",
                    "invalid_symbol",
                    "invalid_date",
                    "invalid_range",
                    "invalid_interval",
                    "invalid_limit",
                    "invalid_format",
                    "invalid_cursor",
                    "cursor_mismatch",
                    "invalid_period",
                    "invalid_overlay",
                    "invalid_adjustment",
                    "conflicting_parameters",
                ],
            ),
            "409": oa.error_answer(
                "raw or all asked of a symbol still stored split-adjusted without its actions (not yet migrated)",
                ["adjustment_unavailable"],
            ),
            "404": oa.error_answer("no history is stored for the symbol", ["unknown_symbol"]),
            "406": oa.error_answer("format=parquet without an Accept header that takes it", ["accept_required"]),
            "503": oa.unavailable_answer(
                "the storage holding the range is unavailable (PostgreSQL and the lake, or the lake for older "
                "years); or (on AWS) the parameter store could not be read at start",
                ["history_unavailable", "configuration_unavailable"],
            ),
        },
    }
    paths = {
        "/api/backtest": {"get": operation},
    }
    return oa.document(
        "backtest",
        "Backtest service",
        "Historical daily OHLCV and Fibonacci N-day bars (3, 5, 8, 13, 21, 34 trading sessions), raw, split-adjusted "
        "or total return, from PostgreSQL (recent years) and a Parquet lake (full history).",
        paths,
        {"BarsPage": PAGE, "DailyBar": DAILY_BAR, "NDayBar": N_DAY_BAR, "CorporateAction": CORPORATE_ACTION},
    )


DOCUMENT = build()
