"""Backtest service: daily and Fibonacci N-day bars for a symbol and a date range."""

from chalice import Cron

from chalicelib.daily_update import run_daily_update
from chalicelib.formats import CONTENT_TYPES, action_headers, encode
from chalicelib.loading import Patience
from chalicelib.openapi import DOCUMENT
from chalicelib.runtime import BacktestRuntime
from chalicelib.service import market_today, parse_query, seconds_until_next_update
from shared import observability
from shared.errors import ApiError
from shared.openapi import query_names
from shared.startup import start
from shared.web import ServiceApp, cacheable_response, query_params, request_of

start("backtest")  # stops here, in one line, without a setting this stage needs
app = ServiceApp("market-backtest", "backtest", DOCUMENT)
app.api.binary_types.append("application/vnd.apache.parquet")
runtime = BacktestRuntime()


@app.route("/api/backtest", methods=["GET"])
def get_backtest():
    query = parse_query(query_params(app, query_names(DOCUMENT, "/api/backtest", "get")))
    accept = request_of(app).headers.get("accept", "")
    if query.format == "parquet" and "*/*" not in accept and CONTENT_TYPES["parquet"] not in accept:
        # API Gateway only passes binary bodies to clients that ask for them.
        raise ApiError(406, "accept_required", f"format=parquet needs 'Accept: {CONTENT_TYPES['parquet']}' (or */*)")
    page = runtime.history.page(query)
    observability.note(tier=page.source)
    # Only a range the caller bounded in the past is final enough to cache long; adjusted
    # prices of the past change when a split or dividend is stored, which only the daily
    # update does: until then (raw prices of the past never change).
    past = query.end is not None and page.end < market_today()
    keep = 86400 if query.adjustment == "raw" else seconds_until_next_update()
    headers = {"X-Source": page.source, **action_headers(page, query.format)}
    if page.next_cursor:
        # CSV and Parquet bodies have no place for it.
        headers["X-Next-Cursor"] = page.next_cursor
    return cacheable_response(
        encode(page, query.format),
        CONTENT_TYPES[query.format],
        headers,
        final=past,
        if_none_match=request_of(app).headers.get("if-none-match"),
        max_age_s=keep,
    )


# After the close, every day: 22:30 UTC is 17:30 New York in winter (EST) and 18:30 in
# summer (EDT), when Polygon's grouped daily bars are complete. A weekend or a holiday has
# no session to fill: the run finds nothing missing, asks nothing, and its heartbeat
# (UpdatesCompleted) still says it ran. Its own Lambda function and role
# (policy-<stage>-daily-update.json): the API's role stays read-only.
@app.schedule(Cron("30", "22", "*", "*", "?", "*"), name="daily-update")
def daily_update(event):
    # Wait out 429s and the budget only while the function has time left, keeping a
    # fifth of it (at most a minute) to write what was fetched.
    remaining_s = event.context.get_remaining_time_in_millis() / 1000 if getattr(event, "context", None) else 900
    patience = Patience(min(runtime.settings.ingest_max_wait_s, remaining_s - min(60.0, remaining_s / 5)))
    # The report is logged as one line with its metrics, and a run that could not do its
    # job then fails the invocation (shared.observability).
    return run_daily_update(
        runtime.settings, runtime.database, runtime.lake, runtime.polygon, runtime.upstream_budget, patience=patience
    )
