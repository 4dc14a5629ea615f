"""Alerts service: per-user watchlist rules, checked on a schedule, delivered to each user's own channels."""

import logging
import re

from chalice import AuthResponse, Rate

from chalicelib import auth
from chalicelib.channels import CHANNEL_ID_PATTERN, public_channel, validate_channel
from chalicelib.errors import ChannelExists, ChannelLimitReached, NotFound, RuleLimitReached
from chalicelib.fanout import MAX_WORKERS, WORK_QUEUE, WORKER_BATCH
from chalicelib.openapi import DOCUMENT
from chalicelib.planner import plan_check
from chalicelib.records import public_rule
from chalicelib.rules import EVENT_CURSOR_PATTERN, MAX_EVENTS_PAGE, RULE_ID_PATTERN, validate
from chalicelib.runtime import AlertsRuntime
from chalicelib.worker import handle_batch
from shared.config import stage_name
from shared.errors import ApiError, aws_failures, aws_unavailable, bad_request, not_found, unavailable
from shared.observability import record_run
from shared.openapi import query_names
from shared.startup import start
from shared.web import ServiceApp, json_response, query_params, request_of

start("alerts")  # stops here, in one line, without a setting this stage needs


def not_found_answer(missing: NotFound) -> ApiError:
    if missing.what == "channel":
        return channel_not_found(missing.name)
    return rule_not_found(missing.name)


# The domain's errors as the API answers them (ServiceApp maps them for every route).
ANSWERS = {
    NotFound: not_found_answer,
    RuleLimitReached: lambda refused: bad_request("too_many_rules", str(refused)),
    ChannelLimitReached: lambda refused: bad_request("too_many_channels", str(refused)),
    ChannelExists: lambda refused: ApiError(409, "channel_exists", str(refused)),
}
app = ServiceApp("market-alerts", "alerts", DOCUMENT, ANSWERS)
runtime = AlertsRuntime()
log = logging.getLogger(__name__)


# Cognito's tokens, verified in full (auth.py). A refused token is a 401, in API
# Gateway and (shared/startup.py) under chalice local alike. A built-in authorizer,
# not a CognitoUserPoolAuthorizer: chalice local lets every request through those.
# When the pool's key set cannot be had, an authorizer can only allow or refuse: it
# lets the request on as UNVERIFIED and current_user answers 503, so the caller
# waits and retries instead of being signed out. API Gateway keeps an authorizer's
# answer per token for ttl_seconds: a minute, so such a 503 does not outlast it.
@app.authorizer(ttl_seconds=60)
def bearer_token(auth_request):
    try:
        user = runtime.token_verifier.verify(auth_request.token)
    except auth.InvalidToken as exc:
        log.info("token refused: %s", exc)  # why, never the token
        raise auth.Unauthorized() from None
    except Exception as exc:  # noqa: BLE001 - keys unavailable, or anything unforeseen: a 503, not a 500
        log.error("token not checked: %s: %s", type(exc).__name__, exc)
        return AuthResponse(routes=["*"], principal_id=auth.UNVERIFIED)
    return AuthResponse(routes=["*"], principal_id=user)


def current_user() -> str:
    """The caller's Cognito sub; the only way a route learns who is asking."""
    principal = request_of(app).context["authorizer"]["principalId"]
    if principal == auth.UNVERIFIED:
        raise unavailable(
            "auth_unavailable",
            "sign-in cannot be checked right now (the user pool's keys); try again shortly",
            5,
            "cognito",
        )
    return principal


def json_body():
    try:
        return request_of(app).json_body
    except Exception:  # noqa: BLE001 - Chalice raises BadRequestError with its own shape
        raise bad_request("invalid_json", "the body is not valid JSON") from None


RULE_ID = re.compile(RULE_ID_PATTERN)
CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)
EVENT_CURSOR = re.compile(EVENT_CURSOR_PATTERN)
WHOLE = re.compile(r"^[0-9]+$")


def require_history(symbol: str) -> None:
    """A rule only for a symbol whose history the product keeps: else it could never be
    evaluated, and would fail quietly at every check."""
    try:
        known = runtime.history_index.has_history(symbol)
    except aws_failures() as exc:
        raise aws_unavailable(exc, "history_unavailable", "the history store", "s3") from exc
    if not known:
        raise bad_request(
            "unknown_symbol",
            f"no history is stored for {symbol}: a rule can only watch a symbol the product keeps history for "
            "(the backtest API lists what it holds; an operator adds a symbol with python -m batch.ingest)",
        )


def rule_not_found(rule_id: str) -> ApiError:
    return not_found("rule_not_found", f"no rule {rule_id}")


def rule_id_of(rule_id: str) -> str:
    """A well-formed rule id, or the 404 any unknown id gets."""
    if not RULE_ID.fullmatch(rule_id):
        raise rule_not_found(rule_id)
    return rule_id


@app.route("/api/alerts/rules", methods=["POST"], authorizer=bearer_token)
def create_rule():
    query_params(app, ())
    settings = runtime.settings
    rule = validate(json_body(), settings.alerts_max_condition_len)
    require_history(rule["symbol"])
    item = runtime.alert_store.create_rule(current_user(), rule, settings.alerts_max_rules_per_user)
    return json_response(public_rule(item), 201, {"Location": f"/api/alerts/rules/{item['id']}"})


@app.route("/api/alerts/rules", methods=["GET"], authorizer=bearer_token)
def list_rules():
    query_params(app, ())
    rules = runtime.alert_store.list_rules(current_user())
    return json_response({"rules": [public_rule(r) for r in sorted(rules, key=lambda r: r["created_at"])]})


@app.route("/api/alerts/rules/{rule_id}", methods=["GET"], authorizer=bearer_token)
def get_rule(rule_id):
    query_params(app, ())
    rule_id = rule_id_of(rule_id)
    return json_response(public_rule(runtime.alert_store.get_rule(current_user(), rule_id)))


@app.route("/api/alerts/rules/{rule_id}", methods=["PATCH"], authorizer=bearer_token)
def change_rule(rule_id):
    query_params(app, ())
    rule_id = rule_id_of(rule_id)
    changes = validate(json_body(), runtime.settings.alerts_max_condition_len, partial=True)
    if "symbol" in changes:
        require_history(changes["symbol"])
    return json_response(public_rule(runtime.alert_store.update_rule(current_user(), rule_id, changes)))


@app.route("/api/alerts/rules/{rule_id}", methods=["DELETE"], authorizer=bearer_token)
def delete_rule(rule_id):
    query_params(app, ())
    rule_id = rule_id_of(rule_id)
    runtime.alert_store.delete_rule(current_user(), rule_id)
    return json_response({"deleted": rule_id})


@app.route("/api/alerts/events", methods=["GET"], authorizer=bearer_token)
def list_events():
    params = query_params(app, query_names(DOCUMENT, "/api/alerts/events", "get"))
    raw_limit = params.get("limit", "50")
    if not WHOLE.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_EVENTS_PAGE:
        raise bad_request("invalid_limit", f"limit must be a whole number from 1 to {MAX_EVENTS_PAGE}")
    cursor = params.get("cursor")
    if cursor is not None and not EVENT_CURSOR.fullmatch(cursor):
        raise bad_request("invalid_cursor", "the cursor is not one this service issued")
    events, next_cursor = runtime.alert_store.list_events(current_user(), int(raw_limit), cursor)
    return json_response({"events": events, "next_cursor": next_cursor})


@app.route("/api/alerts/channels", methods=["POST"], authorizer=bearer_token)
def create_channel():
    query_params(app, ())
    # A webhook may be http:// on loopback only on this machine, where tests and make run receive it.
    channel = validate_channel(json_body(), local_stage=runtime.settings.local)
    created = runtime.channels.create(current_user(), channel)
    return json_response(public_channel(created), 201, {"Location": f"/api/alerts/channels/{created['id']}"})


@app.route("/api/alerts/channels", methods=["GET"], authorizer=bearer_token)
def list_channels():
    query_params(app, ())
    channels = runtime.channels.list(current_user())
    return json_response({"channels": [public_channel(c) for c in sorted(channels, key=lambda c: c["created_at"])]})


@app.route("/api/alerts/channels/{channel_id}", methods=["DELETE"], authorizer=bearer_token)
def delete_channel(channel_id):
    query_params(app, ())
    if not CHANNEL_ID.fullmatch(channel_id):
        raise channel_not_found(channel_id)
    runtime.channels.delete(current_user(), channel_id)
    return json_response({"deleted": channel_id})


def channel_not_found(channel_id: str) -> ApiError:
    return not_found("channel_not_found", f"no channel {channel_id}")


# Every 15 minutes, day and night: the planner checks the market's real hours (09:30-16:00
# New York, early closes too) and outside them only says it is alive, so a missing
# heartbeat (ChecksCompleted) means a check is failing or not running, at any hour.
@app.schedule(Rate(15, unit=Rate.MINUTES), name="alerts-check")
def scheduled_check(event):
    # The plan's report is logged as one line with its metrics; a plan that could not be
    # handed out fails the invocation (shared.observability).
    return plan_check(runtime.alert_store, runtime.checks, runtime.quotes, runtime.work_queue, runtime.settings)


# The check's shards and deliveries, from the work queue (its event source: batches,
# partial batch failures, a redrive policy to the dead-letter queue; make package adds
# ReportBatchItemFailures, which Chalice does not write). The queue's name is the
# stage's (make package names it); locally a poller plays the event source.
@app.on_sqs_message(queue=WORK_QUEUE, batch_size=WORKER_BATCH, maximum_concurrency=MAX_WORKERS, name="alerts-worker")
def alerts_worker(event):
    outcome = handle_batch(
        [record.to_dict() for record in event],
        runtime.alert_store,
        runtime.checks,
        runtime.database,
        runtime.publisher,
        runtime.work_queue,
        runtime.settings,
    )
    for report in outcome.completed:  # the check's line, with its metrics, from whoever completed it
        record_run("alerts", stage_name(), report.job, report)
    return outcome.response()
