"""A rule as the API shows it, and DynamoDB's numbers as JSON's: no I/O here, so what only
describes a rule (the OpenAPI document) does not reach the store's calls."""

from __future__ import annotations

from dataclasses import dataclass
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


DEFAULT_FREQUENCY = "once_per_bar"
# What a firing's record keeps of its rule: enough to find it again and to say what fired.
SNAPSHOT_FIELDS = ("pk", "sk", "id", "symbol", "condition", "enabled")


@dataclass(frozen=True)
class Rule:
    """A rule as the check reads it: what it watches and its trigger state. Stored as a
    DynamoDB item under ``USER#<user>`` / ``RULE#<id>`` (``from_item``; the API answers
    with ``public_rule`` of the item)."""

    user: str
    id: str
    symbol: str
    condition: str
    frequency: str = DEFAULT_FREQUENCY
    enabled: bool = False
    expires_at: str | None = None
    armed: bool = True  # on_change: whether the next turn to true fires
    cycle: int = 0  # on_change: how many times it re-armed (part of its firings' identity)
    last_fired_day: str | None = None
    last_error: str | None = None

    @classmethod
    def from_item(cls, item: dict) -> Rule:
        return cls(
            user=item["user"],
            id=item["id"],
            symbol=item["symbol"],
            condition=item["condition"],
            frequency=item.get("frequency") or DEFAULT_FREQUENCY,
            enabled=bool(item.get("enabled", False)),
            expires_at=item.get("expires_at"),
            armed=bool(item.get("armed", True)),
            cycle=int(item.get("cycle", 0)),
            last_fired_day=item.get("last_fired_day"),
            last_error=item.get("last_error"),
        )

    @property
    def key(self) -> dict:
        return {"pk": f"USER#{self.user}", "sk": f"RULE#{self.id}"}

    def registry_fields(self) -> dict:
        """What the symbol registry counts of it (``store.contribution``)."""
        return {"symbol": self.symbol, "condition": self.condition, "enabled": self.enabled}

    def snapshot(self) -> dict:
        """The rule as a firing's record keeps it (``SNAPSHOT_FIELDS``)."""
        return {**self.key, "id": self.id, "symbol": self.symbol, "condition": self.condition, "enabled": self.enabled}
