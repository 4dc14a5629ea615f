"""The alerts API's OpenAPI 3.1 document, built from the constants its validation uses."""

from __future__ import annotations

from shared import openapi as oa
from shared.config import Settings

from .rules import EVENT_CURSOR_PATTERN, FREQUENCIES, MAX_EVENTS_PAGE, RULE_ID_PATTERN
from .store import PUBLIC_RULE_FIELDS

MAX_CONDITION = Settings().alerts_max_condition_len
DATE_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

RULE = {
    "type": "object",
    "required": list(PUBLIC_RULE_FIELDS),
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": RULE_ID_PATTERN},
        "symbol": {"type": "string"},
        "condition": {"type": "string"},
        "frequency": {"enum": list(FREQUENCIES)},
        "expires_at": DATE_TIME_OR_NULL,
        "enabled": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "last_fired_at": DATE_TIME_OR_NULL,
        "last_error": {"type": ["string", "null"]},
    },
}
FIELDS = {
    "symbol": oa.SYMBOL,
    "condition": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_CONDITION,
        "description": "e.g. close < sma(50); the README describes the language",
    },
    "frequency": {"enum": list(FREQUENCIES), "default": "once_per_bar"},
    "expires_at": {**DATE_TIME_OR_NULL, "description": "with a time zone, in the future"},
    "enabled": {"type": "boolean", "default": True},
}
NEW_RULE = {"type": "object", "required": ["symbol", "condition"], "additionalProperties": False, "properties": FIELDS}
RULE_CHANGES = {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": FIELDS}
EVENT = {
    "type": "object",
    "required": ["rule_id", "symbol", "condition", "values", "fired_at", "delivery"],
    "properties": {
        "rule_id": {"type": "string"},
        "user": {"type": "string"},
        "symbol": {"type": "string"},
        "condition": {"type": "string"},
        "frequency": {"enum": list(FREQUENCIES)},
        "values": {"type": "object", "additionalProperties": {"type": "number"}},
        "bar_date": {"type": "string", "format": "date"},
        "price_as_of": {"type": "string"},
        "price_stale": {"type": "boolean"},
        "fired_at": {"type": "string", "format": "date-time"},
        "firing_id": {"type": "string"},
        "delivery": {"enum": ["sent", "failed", "unknown"]},
        "message_id": {"type": "string"},
    },
}
# What API Gateway (and chalice local) answer when the authorizer refuses.
GATEWAY_REFUSAL = {
    "type": "object",
    "description": 'API Gateway\'s own body: {"message"} without a token, {"Message"} for a refused one',
    "minProperties": 1,
    "properties": {"message": {"type": "string"}, "Message": {"type": "string"}},
}
RULE_ID = {"name": "rule_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": RULE_ID_PATTERN}}
BODY_ERRORS = [
    "invalid_json",
    "invalid_body",
    "unknown_field",
    "missing_field",
    "invalid_symbol",
    "missing_symbol",
    "invalid_condition",
    "condition_too_long",
    "invalid_frequency",
    "invalid_expires_at",
    "invalid_enabled",
]


def _rule(description: str) -> dict:
    return {"description": description, "content": oa.json_content({"$ref": "#/components/schemas/Rule"})}


def _with_auth(operation: dict) -> dict:
    operation["security"] = [{"bearer": []}]
    operation["responses"]["401"] = {
        "description": "no bearer token",
        "content": oa.json_content({"$ref": "#/components/schemas/GatewayRefusal"}),
    }
    operation["responses"]["403"] = {
        "description": "the token is invalid or expired",
        "content": oa.json_content({"$ref": "#/components/schemas/GatewayRefusal"}),
    }
    return operation


NOT_FOUND = oa.error_answer("no such rule of this user", ["rule_not_found"])


def build() -> dict:
    paths = {
        "/api/alerts/rules": {
            "post": _with_auth(
                {
                    "operationId": "createRule",
                    "summary": "Create a rule",
                    "requestBody": {
                        "required": True,
                        "content": oa.json_content({"$ref": "#/components/schemas/NewRule"}),
                    },
                    "responses": {
                        "201": {
                            **_rule("the rule"),
                            "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                        },
                        "400": oa.error_answer(
                            "bad input, or the user's rule limit is reached", [*BODY_ERRORS, "too_many_rules"]
                        ),
                    },
                }
            ),
            "get": _with_auth(
                {
                    "operationId": "listRules",
                    "summary": "The user's rules, oldest first",
                    "responses": {
                        "200": {
                            "description": "the rules",
                            "content": oa.json_content(
                                {
                                    "type": "object",
                                    "required": ["rules"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "rules": {"type": "array", "items": {"$ref": "#/components/schemas/Rule"}}
                                    },
                                }
                            ),
                        }
                    },
                }
            ),
        },
        "/api/alerts/rules/{rule_id}": {
            "get": _with_auth(
                {
                    "operationId": "getRule",
                    "summary": "One rule",
                    "parameters": [RULE_ID],
                    "responses": {"200": _rule("the rule"), "404": NOT_FOUND},
                }
            ),
            "patch": _with_auth(
                {
                    "operationId": "changeRule",
                    "summary": "Change a rule (its trigger state starts again)",
                    "parameters": [RULE_ID],
                    "requestBody": {
                        "required": True,
                        "content": oa.json_content({"$ref": "#/components/schemas/RuleChanges"}),
                    },
                    "responses": {
                        "200": _rule("the changed rule"),
                        "400": oa.error_answer("bad input", BODY_ERRORS),
                        "404": NOT_FOUND,
                    },
                }
            ),
            "delete": _with_auth(
                {
                    "operationId": "deleteRule",
                    "summary": "Delete a rule",
                    "parameters": [RULE_ID],
                    "responses": {
                        "200": {
                            "description": "deleted",
                            "content": oa.json_content(
                                {
                                    "type": "object",
                                    "required": ["deleted"],
                                    "properties": {"deleted": {"type": "string"}},
                                }
                            ),
                        },
                        "404": NOT_FOUND,
                    },
                }
            ),
        },
        "/api/alerts/events": {
            "get": _with_auth(
                {
                    "operationId": "listEvents",
                    "summary": "What fired, newest first, with the values and the delivery",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE, "default": 50},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": EVENT_CURSOR_PATTERN},
                            "description": "next_cursor of the previous page",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "a page of events",
                            "content": oa.json_content(
                                {
                                    "type": "object",
                                    "required": ["events", "next_cursor"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                        "next_cursor": {"type": ["string", "null"]},
                                    },
                                }
                            ),
                        },
                        "400": oa.error_answer("bad input", ["invalid_limit", "invalid_cursor"]),
                    },
                }
            ),
        },
    }
    return oa.document(
        "alerts",
        "Alerts service",
        "Per-user watchlist rules such as close < sma(50), checked on a schedule and notified through SNS. "
        "Every route but this document needs a bearer token (HS256 JWT whose sub is the user).",
        paths,
        {
            "Rule": RULE,
            "NewRule": NEW_RULE,
            "RuleChanges": RULE_CHANGES,
            "Event": EVENT,
            "GatewayRefusal": GATEWAY_REFUSAL,
        },
        security={"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    )


DOCUMENT = build()
