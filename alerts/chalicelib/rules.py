"""Validating what a user sends for a rule."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.errors import ApiError, bad_request
from shared.symbols import parse_symbol

from .condition import ConditionError, parse

FREQUENCIES = ("once", "once_per_bar", "on_change")
# A rule id: 16 hex digits (uuid4's first 64 bits). An events cursor: the sort key
# after "EVENT#", fired_at and the rule id. Anything else is refused before it
# reaches DynamoDB, which would fail on an over-long key rather than find nothing.
RULE_ID_PATTERN = r"^[0-9a-f]{16}$"
EVENT_CURSOR_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z#[0-9a-f]{16}$"
MAX_EVENTS_PAGE = 200
FIELDS = {"symbol", "condition", "frequency", "expires_at", "enabled"}


def _expires(raw, now: datetime) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise bad_request("invalid_expires_at", "expires_at must be an ISO-8601 date-time string or null")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request("invalid_expires_at", f"expires_at {raw!r} is not an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        raise bad_request("invalid_expires_at", "expires_at needs a time zone, e.g. 2026-12-31T21:00:00Z")
    if moment <= now:
        raise bad_request("invalid_expires_at", "expires_at is in the past")
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def validate(body, max_condition_len: int, partial: bool = False, now: datetime | None = None) -> dict:
    """The rule fields from a request body: all of them to create, any of them to change."""
    now = now or datetime.now(UTC)
    if not isinstance(body, dict):
        raise bad_request("invalid_body", "the body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise bad_request("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    if not partial:
        missing = {"symbol", "condition"} - set(body)
        if missing:
            raise bad_request("missing_field", f"missing field(s): {', '.join(sorted(missing))}")
    if partial and not body:
        raise bad_request("invalid_body", "nothing to change")
    rule: dict = {}
    if "symbol" in body:
        if not isinstance(body["symbol"], str):
            raise bad_request("invalid_symbol", "symbol must be a string")
        rule["symbol"] = parse_symbol(body["symbol"])
    if "condition" in body:
        condition = body["condition"]
        if not isinstance(condition, str):
            raise bad_request("invalid_condition", "condition must be a string")
        if len(condition) > max_condition_len:
            raise bad_request("condition_too_long", f"a condition is at most {max_condition_len} characters")
        try:
            parse(condition)
        except ConditionError as exc:
            details = {"position": exc.position, "expected": exc.expected} if exc.position else {}
            raise ApiError(400, "invalid_condition", exc.message, details=details) from None
        rule["condition"] = condition.strip()
    if "frequency" in body or not partial:
        frequency = body.get("frequency", "once_per_bar")
        if frequency not in FREQUENCIES:
            raise bad_request("invalid_frequency", f"frequency must be one of {', '.join(FREQUENCIES)}")
        rule["frequency"] = frequency
    if "expires_at" in body or not partial:
        rule["expires_at"] = _expires(body.get("expires_at"), now)
    if "enabled" in body or not partial:
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise bad_request("invalid_enabled", "enabled must be true or false")
        rule["enabled"] = enabled
    return rule
