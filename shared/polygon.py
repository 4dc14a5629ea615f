"""Polygon (now Massive) REST access through the official ``massive`` client.

The client is built with ``retries=0``: urllib3's own retries obey ``Retry-After``
without a cap and are invisible to our call budget, so retrying happens here,
with every attempt charged to the budget and the whole call held to a deadline.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import date
from typing import Protocol

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from shared import observability
from shared.config import Settings

log = logging.getLogger(__name__)

# Kinds of upstream failure; the quote service maps each to an answer.
NOT_FOUND = "not_found"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
AUTH = "auth"
NOT_ENTITLED = "not_entitled"
BAD_RESPONSE = "bad_response"

_RETRYABLE = {UNAVAILABLE, BAD_RESPONSE}


# What a caller is told of each kind of failure: never an address, a port or a stack
# (urllib3's messages name the connection: those go to the log only).
PUBLIC = {
    NOT_FOUND: "the vendor does not know it",
    RATE_LIMITED: "the vendor is rate limiting us",
    UNAVAILABLE: "the vendor is unavailable",
    AUTH: "the vendor refused our API key",
    NOT_ENTITLED: "our plan with the vendor does not include this data",
    BAD_RESPONSE: "the vendor answered with something that is not a market-data answer",
}


class UpstreamError(Exception):
    def __init__(self, kind: str, message: str, retry_after_s: float | None = None, public: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message  # for the log
        self.retry_after_s = retry_after_s
        self.public = public or PUBLIC.get(kind, "the vendor failed")  # for the caller


class BudgetExceeded(Exception):
    """The shared per-minute allowance of upstream calls is spent."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"upstream call budget spent; a call frees up in {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


class Budget(Protocol):
    def acquire(self) -> None:
        """Take one call from the allowance or raise ``BudgetExceeded``."""


# The last HTTP response each thread received from Polygon: the client raises
# BadResponse with the body only, and a 429's Retry-After is in the headers.
_last = threading.local()


class _RecordingPool:
    """The client's urllib3 pool, remembering each thread's last response."""

    def __init__(self, pool):
        self._pool = pool

    def request(self, *args, **kwargs):
        _last.response = None
        response = self._pool.request(*args, **kwargs)
        _last.response = response
        return response

    def __getattr__(self, name):
        return getattr(self._pool, name)


def make_client(settings: Settings, transport=None):
    """The official client, sending its requests through ``transport`` when given (the
    vendor relay's pool, ``shared.vendor_relay.RelayPool``), else its own urllib3 pool."""
    from massive import RESTClient
    from urllib3.util.retry import Retry

    # Without a key the fake server still needs a bearer token; it is never a real one.
    client = RESTClient(
        api_key=settings.polygon_api_key or "local-dev-key",
        base=settings.polygon_base_url,
        connect_timeout=settings.polygon_connect_timeout_s,
        read_timeout=settings.polygon_read_timeout_s,
        retries=0,
        maxsize=16,
        pagination=False,
        # urllib3 would turn a 429 or 5xx into MaxRetryError and drop the response;
        # every status comes back instead, and we decide (see translate).
        connection_pool_kw={"retries": Retry(total=0, redirect=0, raise_on_status=False)},
    )
    client.client = _RecordingPool(transport if transport is not None else client.client)
    return client


def _retry_after_s(response) -> float | None:
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: Polygon sends seconds


def deadline_s(settings: Settings) -> float:
    """The longest one upstream call (with its retries) can take."""
    per_attempt = settings.polygon_connect_timeout_s + settings.polygon_read_timeout_s
    return (settings.polygon_retries + 1) * per_attempt + 0.5 * settings.polygon_retries


def _classify_body(body: str) -> UpstreamError:
    """``BadResponse`` carries only the body: the status is in Polygon's JSON."""
    try:
        payload = json.loads(body)
    except ValueError:
        return UpstreamError(BAD_RESPONSE, f"upstream answered with a non-JSON error: {body[:120]!r}")
    if not isinstance(payload, dict):
        return UpstreamError(BAD_RESPONSE, "upstream answered with an unexpected error body")
    status = str(payload.get("status", "")).upper()
    text = str(payload.get("message") or payload.get("error") or "")
    if status == "NOT_FOUND":
        return UpstreamError(NOT_FOUND, text or "not found")
    if status == "NOT_AUTHORIZED":
        return UpstreamError(NOT_ENTITLED, text or "the plan is not entitled to this data")
    if "api key" in text.lower():
        return UpstreamError(AUTH, text)
    if "exceeded the maximum requests" in text.lower():
        return UpstreamError(RATE_LIMITED, text)
    return UpstreamError(BAD_RESPONSE, text or f"upstream error status {status or 'unknown'}")


def translate(exc: BaseException) -> UpstreamError:
    """Map what the massive client and urllib3 raise to one ``UpstreamError``."""
    from massive.exceptions import BadResponse
    from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError, ReadTimeoutError

    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, BadResponse):
        response = getattr(_last, "response", None)
        status = getattr(response, "status", None)
        classified = _classify_body(str(exc))
        if status == 429:
            return UpstreamError(
                RATE_LIMITED, "upstream rate limit reached (429)", retry_after_s=_retry_after_s(response)
            )
        if status == 404:
            return UpstreamError(NOT_FOUND, classified.message)
        if status == 401:
            return UpstreamError(AUTH, classified.message)
        if status == 403:
            return UpstreamError(NOT_ENTITLED, classified.message)
        if status is not None and status >= 500:
            return UpstreamError(
                UNAVAILABLE, f"upstream answered {status}: {classified.message}", public=f"the vendor answered {status}"
            )
        return classified
    if isinstance(exc, (MaxRetryError, HTTPError, OSError)):
        reason = exc.reason if isinstance(exc, MaxRetryError) else exc
        slow = isinstance(reason, (TimeoutError, ReadTimeoutError, ConnectTimeoutError)) or "timed out" in str(reason)
        public = "the vendor did not answer in time" if slow else "the vendor could not be reached"
        return UpstreamError(UNAVAILABLE, f"upstream unavailable: {reason}", public=public)
    if isinstance(exc, ValueError):
        return UpstreamError(BAD_RESPONSE, f"upstream answered with a malformed body: {exc}")
    raise exc


def call(fn: Callable[[], object], budget: Budget, settings: Settings):
    """Run one upstream request with bounded retries, each attempt charged to ``budget``."""

    def attempt():
        try:
            budget.acquire()
        except BudgetExceeded:
            observability.count("budget_refusals")
            raise
        observability.count("upstream_calls")
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - translate() re-raises what it does not know
            raise translate(exc) from exc

    retrying = Retrying(
        stop=stop_after_attempt(settings.polygon_retries + 1) | stop_after_delay(deadline_s(settings)),
        wait=wait_exponential(multiplier=0.1, max=0.5),
        retry=retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.kind in _RETRYABLE),
        reraise=True,
    )
    return retrying(attempt)


def _decode(resp) -> dict:
    try:
        payload = json.loads(resp.data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamError(BAD_RESPONSE, f"upstream answered with a malformed body: {exc}") from None
    if not isinstance(payload, dict):
        raise UpstreamError(BAD_RESPONSE, "upstream answered with a body that is not an object")
    return payload


# Set on each ticker object the gateway returns: whether the answer was a delayed one.
DELAYED = "_delayed"


def _delayed(payload: dict) -> bool:
    return str(payload.get("status", "")).upper() == "DELAYED"


def _listed(payload: dict, key: str, what: str) -> list:
    """The list under ``key`` of an answer whose status says it holds data."""
    if str(payload.get("status", "")).upper() not in ("OK", "DELAYED"):
        raise _classify_body(json.dumps(payload))
    items = payload.get(key) or []
    if not isinstance(items, list):
        raise UpstreamError(BAD_RESPONSE, f"upstream {what} '{key}' is not a list")
    return items


# Tickers per many-ticker snapshot request (Settings.quote_batch_chunk, 250):
# Polygon documents no limit for /v2/snapshot/.../tickers?tickers= (the URL's
# length is the limit); its other many-ticker snapshot, /v3/snapshot?ticker.any_of=,
# takes at most 250. 250 keeps the URL under 3 KB even at the longest symbols
# (10 characters and a comma), far inside the 8 KB servers and proxies commonly
# accept. The v2 endpoint is used, not v3, because it answers with the very
# ticker object of the one-ticker snapshot, so one parser serves both.


# The vendor's corporate actions (2026-02): the official client's method and each kind's date field.
ACTION_ENDPOINTS = {
    "splits": ("list_stocks_splits", "execution_date"),
    "dividends": ("list_stocks_dividends", "ex_dividend_date"),
}
ACTIONS_PAGE = 5000


class PolygonGateway:
    """The endpoints this project uses, parsed from the raw responses.

    ``raw=True`` because the client's own decoding turns a malformed body into an
    empty result without a word, which would look like "no data". The client is
    built on the first call (``make``), so an answer from the cache never loads
    the ``massive`` package: 100 ms of a cold start.
    """

    def __init__(self, client=None, make=None):
        self._client = client
        self._make = make
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return self._client

    def snapshot(self, symbol: str) -> dict:
        """The ticker object; ``DELAYED`` says whether the answer said ``"status": "DELAYED"``
        (a plan whose snapshots are delayed)."""
        resp = self.client.get_snapshot_ticker("stocks", symbol, raw=True)
        payload = _decode(resp)
        ticker = payload.get("ticker")
        if not isinstance(ticker, dict):
            if str(payload.get("status", "")).upper() == "NOT_FOUND":
                raise UpstreamError(NOT_FOUND, "ticker not found")
            raise UpstreamError(BAD_RESPONSE, "upstream snapshot has no 'ticker' object")
        return {**ticker, DELAYED: _delayed(payload)}

    def snapshots(self, symbols: list[str]) -> dict[str, dict]:
        """Snapshots of many tickers in one request, by symbol.

        ``/v2/snapshot/locale/us/markets/stocks/tickers?tickers=...`` answers with
        the same ticker object as the one-ticker snapshot (one parser for both)
        and leaves out tickers it does not know: a symbol missing from the answer
        is unknown *or* merely absent, which only a one-ticker call can tell.
        """
        # include_otc: the client leaves OTC tickers out unless told, and every one left
        # out would then cost a confirming one-ticker call.
        resp = self.client.get_snapshot_all("stocks", tickers=list(symbols), include_otc=True, raw=True)
        payload = _decode(resp)
        tickers = _listed(payload, "tickers", "snapshot")
        wanted, delayed = set(symbols), _delayed(payload)
        return {
            t["ticker"]: {**t, DELAYED: delayed} for t in tickers if isinstance(t, dict) and t.get("ticker") in wanted
        }

    def grouped_daily(self, day: date) -> list[dict]:
        """Every US stock's raw (unadjusted) daily bar for ``day``, in one request
        (``/v2/aggs/grouped/locale/us/market/stocks/{date}``); empty for a day without trading.
        OTC tickers included: a tracked symbol that trades over the counter has its bar too."""
        resp = self.client.get_grouped_daily_aggs(day.isoformat(), adjusted=False, include_otc=True, raw=True)
        return _listed(_decode(resp), "results", "grouped")

    def actions_page(self, kind: str, next_url: str | None = None, **filters) -> tuple[list[dict], str | None]:
        """One page of the vendor's splits or dividends (``kind``): ``GET /stocks/v1/splits``
        or ``/stocks/v1/dividends`` through the official client (``list_stocks_splits``,
        ``list_stocks_dividends``), filtered by ``ticker``, ``execution_date`` or
        ``ex_dividend_date``, 5,000 a page (the most the vendor gives; its default is 100),
        oldest first (asked for: the two pages of the vendor's docs default differently),
        and the next page's URL. The deprecated /v3/reference/ paths are not used."""
        from urllib.parse import urlparse

        if kind not in ACTION_ENDPOINTS:
            raise ValueError(kind)
        method, day_field = ACTION_ENDPOINTS[kind]
        if next_url is None:
            resp = getattr(self.client, method)(**filters, limit=ACTIONS_PAGE, sort=f"{day_field}.asc", raw=True)
        else:
            parsed = urlparse(next_url)
            resp = self.client._get(path=parsed.path + ("?" + parsed.query if parsed.query else ""), raw=True)
        payload = _decode(resp)
        return _listed(payload, "results", kind), payload.get("next_url") or None

    def ticker_known(self, symbol: str) -> bool:
        """Whether Polygon has the ticker at all (``/v3/reference/tickers/{ticker}``):
        an aggregates answer with no bars does not tell an unknown ticker from an empty range."""
        try:
            resp = self.client._get(path=f"/v3/reference/tickers/{symbol}", raw=True)
        except Exception as exc:  # noqa: BLE001 - translated; only NOT_FOUND is an answer here
            error = translate(exc)
            if error.kind == NOT_FOUND:
                return False
            raise error from exc
        payload = _decode(resp)
        return isinstance(payload.get("results"), dict)

    def daily_bars_page(self, symbol: str, start: date, end: date, next_url: str | None = None):
        """One page of raw daily bars (``adjusted=false``: as traded; adjustment is applied
        on read, from the stored splits and dividends) and the ``next_url`` of the next page.

        One page per call so that each request can be retried and budgeted on its own.
        """
        from urllib.parse import urlparse

        if next_url is None:
            resp = self.client.list_aggs(
                symbol,
                1,
                "day",
                start.isoformat(),
                end.isoformat(),
                adjusted=False,
                sort="asc",
                limit=50000,
                raw=True,
            )
        else:
            parsed = urlparse(next_url)
            # The client follows next_url only inside its own iterator, which turns a
            # malformed page into a silent end of data; this is the same request.
            path = parsed.path + ("?" + parsed.query if parsed.query else "")
            resp = self.client._get(path=path, raw=True)
        payload = _decode(resp)
        return _listed(payload, "results", "aggregates"), payload.get("next_url") or None
