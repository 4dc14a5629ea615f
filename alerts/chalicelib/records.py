"""A rule as the API shows it, and DynamoDB's numbers as JSON's: no I/O here, so what only
describes a rule (the OpenAPI document) does not reach the store's calls."""

from __future__ import annotations

from decimal import Decimal


def from_dynamo(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


PUBLIC_RULE_FIELDS = (
    "id",
    "symbol",
    "condition",
    "frequency",
    "expires_at",
    "enabled",
    "created_at",
    "updated_at",
    "last_fired_at",
    "last_error",
)


def public_rule(item: dict) -> dict:
    return {k: from_dynamo(item.get(k)) for k in PUBLIC_RULE_FIELDS}
