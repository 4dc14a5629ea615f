"""The alerts API's OpenAPI 3.1 document, built from the constants its validation uses."""

from __future__ import annotations

from shared import openapi as oa
from shared.config import Settings

from .channels import CHANNEL_ID_PATTERN, MAX_URL, STATUSES
from .records import PUBLIC_RULE_FIELDS
from .rules import EVENT_CURSOR_PATTERN, FREQUENCIES, MAX_EVENTS_PAGE, RULE_ID_PATTERN

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
        "delivery": {
            "enum": ["sent", "failed", "unknown", "no_channel"],
            "description": "sent: SNS accepted it for the user's confirmed channels; failed: SNS refused it, "
            "the next check retries; unknown: the publish got no answer, it is not resent; no_channel: the user "
            "had no confirmed channel",
        },
        "channels": {"type": "integer", "minimum": 0, "description": "confirmed channels it was sent to"},
        "message_id": {"type": "string"},
    },
}
CHANNEL = {
    "type": "object",
    "required": ["id", "type", "status", "created_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": CHANNEL_ID_PATTERN},
        "type": {"enum": ["email", "webhook"]},
        "address": {"type": "string", "format": "email"},
        "url": {"type": "string", "format": "uri", "maxLength": MAX_URL},
        "status": {
            "enum": list(STATUSES),
            "description": "pending_confirmation: SNS waits for the link in its email to be followed, or for the "
            "webhook to GET the SubscribeURL it was sent; inactive: SNS no longer has the subscription",
        },
        "created_at": {"type": "string", "format": "date-time"},
        "signing_secret": {
            "type": "string",
            "description": "webhooks only: the user's secret that signs every webhook delivery (HMAC-SHA256)",
        },
    },
}
NEW_CHANNEL = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "address"],
            "additionalProperties": False,
            "properties": {"type": {"const": "email"}, "address": {"type": "string", "format": "email"}},
        },
        {
            "type": "object",
            "required": ["type", "url"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "webhook"},
                "url": {
                    "type": "string",
                    "format": "uri",
                    "maxLength": MAX_URL,
                    "description": "https:// on a public host (on the local stage also http:// on loopback)",
                },
            },
        },
    ]
}
# What API Gateway (and chalice local) answer when the authorizer refuses.
GATEWAY_REFUSAL = {
    "type": "object",
    "description": "API Gateway's own refusal, in the one error shape (its gateway responses' template): "
    '{"error": {"code": "unauthorized", "message": "Unauthorized"}}',
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": ["string", "null"]}},
        }
    },
}
RULE_ID = {"name": "rule_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": RULE_ID_PATTERN}}
CHANNEL_ID = {
    "name": "channel_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": CHANNEL_ID_PATTERN},
}
CHANNEL_BODY_ERRORS = [
    "invalid_json",
    "invalid_body",
    "unknown_field",
    "missing_field",
    "invalid_channel_type",
    "invalid_email",
    "invalid_url",
]
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
    # The rule's symbol has no history stored: it could never be evaluated.
    "unknown_symbol",
]


def _rule(description: str) -> dict:
    return {"description": description, "content": oa.json_content({"$ref": "#/components/schemas/Rule"})}


def _with_auth(operation: dict) -> dict:
    operation["security"] = [{"bearer": []}]
    operation["responses"]["401"] = {
        "description": "no token, or one the user pool did not issue to this app, or expired",
        "content": oa.json_content({"$ref": "#/components/schemas/GatewayRefusal"}),
    }
    # Every authenticated route can find the user pool's keys, or the table, unavailable.
    own = operation["responses"].get("503")
    codes = ["auth_unavailable", "storage_unavailable", "configuration_unavailable", "history_unavailable"]
    if own is not None:
        codes += own["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["properties"]["code"][
            "enum"
        ]
    operation["responses"]["503"] = oa.unavailable_answer(
        "a dependency failed: the user pool's keys (cognito), the table (dynamodb), SNS (sns); or (on AWS) the "
        "parameter store at start",
        codes,
    )
    return operation


NOT_FOUND = oa.error_answer("no such rule of this user", ["rule_not_found"])
DELETED = {
    "description": "deleted",
    "content": oa.json_content(
        {"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}
    ),
}


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
                        "200": DELETED,
                        "404": NOT_FOUND,
                    },
                }
            ),
        },
        "/api/alerts/channels": {
            "post": _with_auth(
                {
                    "operationId": "createChannel",
                    "summary": "Add a place the user's alerts are delivered to",
                    "requestBody": {
                        "required": True,
                        "content": oa.json_content({"$ref": "#/components/schemas/NewChannel"}),
                    },
                    "responses": {
                        "201": {
                            "description": "the channel; SNS asks its address to confirm first",
                            "content": oa.json_content({"$ref": "#/components/schemas/Channel"}),
                            "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                        },
                        "400": oa.error_answer(
                            "bad input, or the user's channel limit is reached",
                            [*CHANNEL_BODY_ERRORS, "too_many_channels"],
                        ),
                        "409": oa.error_answer("the user has a channel for this address already", ["channel_exists"]),
                        "503": oa.unavailable_answer(
                            "SNS could not be reached, or the account's topics are spoken for",
                            ["notifications_unavailable", "notifications_at_capacity"],
                        ),
                    },
                }
            ),
            "get": _with_auth(
                {
                    "operationId": "listChannels",
                    "summary": "The user's channels, oldest first, with their status as SNS has it",
                    "responses": {
                        "200": {
                            "description": "the channels (when SNS cannot be asked, the status last seen)",
                            "content": oa.json_content(
                                {
                                    "type": "object",
                                    "required": ["channels"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "channels": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Channel"},
                                        }
                                    },
                                }
                            ),
                        }
                    },
                }
            ),
        },
        "/api/alerts/channels/{channel_id}": {
            "delete": _with_auth(
                {
                    "operationId": "deleteChannel",
                    "summary": "Remove a channel (its SNS subscription goes with it)",
                    "parameters": [CHANNEL_ID],
                    "responses": {
                        "200": DELETED,
                        "404": oa.error_answer("no such channel of this user", ["channel_not_found"]),
                        "503": oa.unavailable_answer("SNS could not be reached", ["notifications_unavailable"]),
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
        "Per-user watchlist rules such as close < sma(50), checked on a schedule and delivered to each user's own "
        "channels (email, webhooks) through SNS. Every route but this document needs a bearer token: an access "
        "(or ID) token of the Amazon Cognito user pool, issued to the dashboard's app client; its sub is the user.",
        paths,
        {
            "Rule": RULE,
            "NewRule": NEW_RULE,
            "RuleChanges": RULE_CHANGES,
            "Event": EVENT,
            "Channel": CHANNEL,
            "NewChannel": NEW_CHANNEL,
            "GatewayRefusal": GATEWAY_REFUSAL,
        },
        security={"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    )


DOCUMENT = build()
