"""A check's record: its plan, its progress and its counts, one DynamoDB item that the
planner writes and every shard and delivery adds to (``CHECK#{id}``), and the
report read off it.

Progress is idempotent under SQS's at-least-once delivery: a shard's counts are added
together with its number to the ``done`` set, on condition that the number is not in it
yet, so a shard run twice counts once; deliveries likewise with ``delivered``. Whoever
completes a set moves the check on (the deliveries start; the check completes), and
whoever finds it complete but not moved on (the one that completed it died) moves it on
again: moving on is idempotent too.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .store import FIRING_KEEP_S, now_iso, to_dynamo

COUNTS = (
    "rules",
    "checked",
    "fired",
    "failed",
    "skipped",
    "undelivered",
    "delivery_failed",
    "messages",
    "quoted",
    "quotes_failed",
)
LATEST = {"pk": "CHECK#LATEST", "sk": "CHECK"}


@dataclass
class CheckReport:
    """A check's outcome, from its record: the scheduled run reports what it planned,
    the completion what every shard and delivery did."""

    job = "alerts-check"
    check: str = ""
    market: str = "open"
    evaluated: bool = False
    shards: int = 0
    symbols: int = 0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    # The previous check, when it had not completed as this one started.
    late: str | None = None
    seconds: float | None = None
    completed: bool = False
    fired_rules: list[dict] = field(default_factory=list)

    def failure(self) -> str | None:
        """Why this check could not do its job, or None. Some rules skipped (missing data,
        an unknown symbol) is a check that did its job."""
        if self.errors:
            return "; ".join(self.errors)
        if not self.completed:
            return None  # planned and handed out: what became of it, its completion says
        if self.reasons.get("history_unavailable") and not self.counts["checked"]:
            return "the indicator states could not be read (PostgreSQL): no rule was evaluated"
        if self.counts["quoted"] and self.counts["quotes_failed"] == self.counts["quoted"]:
            return f"the vendor failed for every one of the {self.counts['quoted']} symbols quoted"
        failed = self.counts["delivery_failed"]
        if failed and not self.counts["fired"] and not self.counts["undelivered"]:
            return f"every delivery failed ({failed} firings wait for the next check)"
        return None

    def metrics(self) -> dict[str, float]:
        """The heartbeat once the check is done (evaluated and delivered, or nothing to
        do); what it evaluated only then. A planned check says it planned, and whether the
        one before it was late."""
        values: dict[str, float] = {}
        if self.late:
            values["ChecksLate"] = 1.0
        failure = self.failure()
        if self.completed or not self.evaluated or failure:
            values["ChecksCompleted"] = 0.0 if failure else 1.0
        if self.completed and self.evaluated:
            values.update(
                RulesChecked=self.counts["checked"],
                RulesFired=self.counts["fired"],
                RulesSkipped=self.counts["skipped"],
                RulesFailed=self.counts["failed"],
                DeliveryFailed=self.counts["delivery_failed"],
            )
            if self.seconds is not None:
                values["CheckSeconds"] = round(self.seconds, 3)
        return values

    def to_dict(self) -> dict:
        return {
            "check": self.check,
            "market": self.market,
            "completed": self.completed,
            "shards": self.shards,
            "symbols": self.symbols,
            **{name: int(self.counts[name]) for name in COUNTS},
            "reasons": {k: int(v) for k, v in self.reasons.items() if v},
            "errors": self.errors,
            "late": self.late,
            "seconds": self.seconds,
        }

    @classmethod
    def of(cls, record: dict) -> CheckReport:
        counts = Counter({name: int(record.get(name, 0)) for name in COUNTS})
        reasons = Counter({k[2:]: int(v) for k, v in record.items() if k.startswith("r_")})
        seconds = None
        if record.get("completed_at") and record.get("tick"):
            seconds = (_moment(record["completed_at"]) - _moment(record["tick"])).total_seconds()
        return cls(
            check=record.get("check", ""),
            market=record.get("market", "open"),
            evaluated=True,
            shards=int(record.get("shards", 0)),
            symbols=int(record.get("symbols", 0)),
            counts=counts,
            reasons=reasons,
            errors=list(record.get("errors", [])),
            late=record.get("late"),
            seconds=seconds,
            completed=record.get("status") == "completed",
        )


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _adding(counts: dict[str, int], reasons: dict[str, int]) -> tuple[list[str], dict, dict]:
    parts, names, values = [], {}, {}
    items = [(name, n) for name, n in counts.items() if n] + [(f"r_{k}", n) for k, n in reasons.items() if n]
    for i, (name, n) in enumerate(items):
        names[f"#c{i}"] = name
        values[f":c{i}"] = int(n)
        parts.append(f"#c{i} :c{i}")
    return parts, names, values


@dataclass
class CheckStore:
    table: Any  # boto3 DynamoDB Table resource

    @property
    def client(self):
        return self.table.meta.client

    def start(self, check: str, tick: str, plan: dict, counts: dict, reasons: dict, errors: list[str]) -> tuple:
        """Write the check's record and make it the latest: (the check it replaces as the
        latest, or None; whether that one had not completed: it is late)."""
        record = {
            "check": check,
            "tick": tick,
            "started_at": now_iso(),
            "status": "running",
            "expires": int(time.time()) + FIRING_KEEP_S,
            "errors": errors,
            **plan,
            **{name: int(n) for name, n in counts.items()},
            **{f"r_{k}": int(n) for k, n in reasons.items() if n},
        }
        names = {f"#a{i}": k for i, k in enumerate(record)}
        values = {f":a{i}": to_dynamo(v) for i, v in enumerate(record.values())}
        # An update, not a put: it makes the item all the same (and a put would be one more
        # kind of write a fault could stop before anything is planned).
        self.table.update_item(
            Key={"pk": f"CHECK#{check}", "sk": "CHECK"},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(record))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        previous = self.table.update_item(
            Key=LATEST,
            UpdateExpression="SET #c = :c",
            ExpressionAttributeNames={"#c": "check"},
            ExpressionAttributeValues={":c": check},
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
        before = previous.get("check")
        if not before:
            return None, False
        old = self.get(before)
        if old is None or old.get("status") == "completed":
            return before, False
        self.table.update_item(
            Key={"pk": f"CHECK#{check}", "sk": "CHECK"},
            UpdateExpression="SET late = :late",
            ExpressionAttributeValues={":late": before},
        )
        return before, True

    def get(self, check: str) -> dict | None:
        from .records import from_dynamo

        item = self.table.get_item(Key={"pk": f"CHECK#{check}", "sk": "CHECK"}, ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    def _progress(self, check: str, done_set: str, member: int, counts: dict, reasons: dict) -> dict | None:
        """Add a shard's or a delivery's counts with its number, once: the record after,
        or None when that number was counted already."""
        parts, names, values = _adding(counts, reasons)
        names["#set"] = done_set
        values[":member"] = {member}
        values[":one"] = member
        try:
            answer = self.table.update_item(
                Key={"pk": f"CHECK#{check}", "sk": "CHECK"},
                UpdateExpression="ADD " + ", ".join(["#set :member", *parts]),
                ConditionExpression="attribute_exists(pk) AND NOT contains(#set, :one)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        from .records import from_dynamo

        return from_dynamo(answer["Attributes"])

    def shard_done(self, check: str, shard: int, counts: dict, reasons: dict) -> dict | None:
        return self._progress(check, "done", shard, counts, reasons)

    def delivery_done(self, check: str, bucket: int, counts: dict) -> dict | None:
        return self._progress(check, "delivered", bucket, counts, {})

    def add(self, check: str, counts: dict) -> None:
        """Counts that happen once whatever else does (a user's message published)."""
        parts, names, values = _adding(counts, {})
        if parts:
            self.table.update_item(
                Key={"pk": f"CHECK#{check}", "sk": "CHECK"},
                UpdateExpression="ADD " + ", ".join(parts),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def complete(self, check: str) -> dict | None:
        """Mark the check completed, once: its record then, or None if already completed."""
        try:
            answer = self.table.update_item(
                Key={"pk": f"CHECK#{check}", "sk": "CHECK"},
                UpdateExpression="SET #s = :done, completed_at = :at",
                ConditionExpression="#s <> :done",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":done": "completed", ":at": now_iso()},
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        from .records import from_dynamo

        return from_dynamo(answer["Attributes"])
