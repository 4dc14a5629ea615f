"""Alert rules, events and firing records in one DynamoDB table.

Keys (``pk``, ``sk``):

| item | pk | sk |
|---|---|---|
| rule | ``USER#{user}`` | ``RULE#{id}`` |
| delivery channel | ``USER#{user}`` | ``CHANNEL#{id}`` |
| the user's counts, SNS topic and webhook signing secret | ``USER#{user}`` | ``META`` |
| event (what fired) | ``USER#{user}`` | ``EVENT#{fired_at}#{rule id}`` |
| firing record | ``FIRING#{firing id}`` | ``FIRING`` |

``{user}`` is the account's Cognito ``sub``.

"All rules of a user" is one query on ``pk``. "All enabled rules" is the sparse
index ``enabled-rules`` (``gsi1pk`` = ``ENABLED#{shard}``, ``gsi1sk`` =
``{symbol}#{id}``): only enabled rules carry its keys, spread over a few shards
so no index partition gets hot; the check queries each shard, never scans.
Firing records expire through DynamoDB TTL (``expires``) after 30 days.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)

ENABLED_INDEX = "enabled-rules"

SHARDS = 4
FIRING_KEEP_S = 30 * 86400


class RuleLimitReached(Exception):
    pass


class NotFound(Exception):
    pass


def _channels():
    from . import channels

    return channels


def now_iso() -> str:
    # Milliseconds: rules and channels are listed in the order they were made, and two
    # made within one second (a script, the dashboard's quick clicks) must not tie.
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _shard(rule_id: str) -> int:
    return int(hashlib.sha256(rule_id.encode()).hexdigest(), 16) % SHARDS


def to_dynamo(value):
    """Floats become Decimals (DynamoDB has no float type)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_dynamo(v) for v in value]
    return value


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


@dataclass
class AlertStore:
    table: Any  # boto3 DynamoDB Table resource (boto3 ships no types)

    @property
    def client(self):
        # The resource's client: it converts plain Python values to DynamoDB's
        # typed form itself (passing {"S": ...} would be wrapped once more).
        return self.table.meta.client

    # ----- rules

    def create_rule(self, user: str, rule: dict, max_rules: int) -> dict:
        rule_id = uuid.uuid4().hex[:16]
        stamp = now_iso()
        item = {
            "pk": f"USER#{user}",
            "sk": f"RULE#{rule_id}",
            "type": "rule",
            "id": rule_id,
            "user": user,
            "created_at": stamp,
            "updated_at": stamp,
            "armed": True,
            "cycle": 0,
            **rule,
        }
        item = self._index_keys(item)
        if self._put_counted(item, "rule_count", max_rules) == "limit":
            raise RuleLimitReached(f"a user may keep at most {max_rules} rules")
        return item

    def _index_keys(self, item: dict) -> dict:
        """Enabled rules carry the sparse index keys; disabled ones do not."""
        item = dict(item)
        if item.get("enabled"):
            item["gsi1pk"] = f"ENABLED#{_shard(item['id'])}"
            item["gsi1sk"] = f"{item['symbol']}#{item['id']}"
        else:
            item.pop("gsi1pk", None)
            item.pop("gsi1sk", None)
        return item

    def get_rule(self, user: str, rule_id: str) -> dict:
        item = self.table.get_item(Key={"pk": f"USER#{user}", "sk": f"RULE#{rule_id}"}, ConsistentRead=True).get("Item")
        if item is None:
            raise NotFound(rule_id)
        return item

    def list_rules(self, user: str) -> list[dict]:
        from boto3.dynamodb.conditions import Key

        return self._query_all(KeyConditionExpression=Key("pk").eq(f"USER#{user}") & Key("sk").begins_with("RULE#"))

    def update_rule(self, user: str, rule_id: str, changes: dict) -> dict:
        """Apply ``changes`` (user-editable fields); resets the trigger state."""
        current = self.get_rule(user, rule_id)
        item = {**current, **changes, "updated_at": now_iso(), "armed": True, "last_error": None}
        item = {k: v for k, v in self._index_keys(item).items() if v is not None}
        try:
            self.table.put_item(Item=to_dynamo(item), ConditionExpression="attribute_exists(pk)")
        except self.client.exceptions.ConditionalCheckFailedException:
            raise NotFound(rule_id) from None
        return item

    def delete_rule(self, user: str, rule_id: str) -> None:
        if not self._delete_counted(user, f"RULE#{rule_id}", "rule_count"):
            raise NotFound(rule_id)

    # ----- a user's items kept under a limit (rules, channels), counted on their META item

    def _put_counted(self, item: dict, counter: str, limit: int) -> str | None:
        """Put a new item of a user's and count it, in one transaction: None when done,
        "limit" when the user has ``limit`` already, "exists" when the item does."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": {"pk": item["pk"], "sk": "META"},
                            "UpdateExpression": f"ADD {counter} :one",
                            "ConditionExpression": f"attribute_not_exists({counter}) OR {counter} < :max",
                            "ExpressionAttributeValues": {":one": 1, ":max": limit},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": {k: to_dynamo(v) for k, v in item.items() if v is not None},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return "limit"
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return "exists"
            raise
        return None

    def _delete_counted(self, user: str, sk: str, counter: str) -> bool:
        """Delete a user's item and count it out; False when there was none."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table.name,
                            "Key": {"pk": f"USER#{user}", "sk": sk},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": {"pk": f"USER#{user}", "sk": "META"},
                            "UpdateExpression": f"ADD {counter} :minus",
                            "ExpressionAttributeValues": {":minus": -1},
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException:
            return False
        return True

    def enabled_rules(self) -> list[dict]:
        from concurrent.futures import ThreadPoolExecutor

        from boto3.dynamodb.conditions import Key

        def shard(n):
            return self._query_all(IndexName=ENABLED_INDEX, KeyConditionExpression=Key("gsi1pk").eq(f"ENABLED#{n}"))

        with ThreadPoolExecutor(max_workers=SHARDS) as pool:
            return [rule for part in pool.map(shard, range(SHARDS)) for rule in part]

    def _state_update(self, rule: dict, state: dict) -> dict:
        names, values, sets, removes = {}, {}, [], []
        if state.get("enabled") is False:
            removes += ["gsi1pk", "gsi1sk"]
        for i, (name, value) in enumerate(state.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            else:
                values[f":v{i}"] = to_dynamo(value)
                sets.append(f"#f{i} = :v{i}")
        expression = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        update = {
            "Key": {"pk": rule["pk"], "sk": rule["sk"]},
            "UpdateExpression": expression.strip(),
            # Deleted meanwhile: leave it deleted rather than recreate a fragment.
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
        }
        if values:
            update["ExpressionAttributeValues"] = values
        return update

    def set_rule_state(self, rule: dict, **state) -> None:
        """Trigger state after a check (armed, cycle, enabled, last_fired_at, last_error)."""
        try:
            self.table.update_item(**self._state_update(rule, state))
        except self.client.exceptions.ConditionalCheckFailedException:
            return  # the rule was deleted meanwhile: nothing to update

    # ----- delivery channels

    def user_meta(self, user: str) -> dict:
        """The user's counts, SNS topic and webhook signing secret (empty for a new user)."""
        item = self.table.get_item(Key={"pk": f"USER#{user}", "sk": "META"}, ConsistentRead=True).get("Item")
        return item or {}

    def add_channel(self, user: str, channel: dict, max_channels: int, new_secret: str) -> dict:
        """Store a new channel within the user's limit; the user's webhook signing secret is
        made with their first channel and kept (a webhook channel carries a copy)."""
        meta = self.table.update_item(
            Key={"pk": f"USER#{user}", "sk": "META"},
            UpdateExpression="SET webhook_secret = if_not_exists(webhook_secret, :secret), topic_arn = :topic",
            ExpressionAttributeValues={":secret": new_secret, ":topic": channel["topic_arn"]},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        item = {
            "pk": f"USER#{user}",
            "sk": f"CHANNEL#{channel['id']}",
            "created_at": now_iso(),
            **channel,
        }
        if channel["type"] == "webhook":
            item["signing_secret"] = meta["webhook_secret"]
        refused = self._put_counted(item, "channel_count", max_channels)
        if refused == "limit":
            raise _channels().ChannelLimitReached()
        if refused == "exists":
            raise _channels().ChannelExists()
        return item

    def set_channel(self, user: str, channel_id: str, **fields) -> None:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        try:
            self.table.update_item(
                Key={"pk": f"USER#{user}", "sk": f"CHANNEL#{channel_id}"},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return  # removed meanwhile

    def get_channel(self, user: str, channel_id: str) -> dict:
        item = self.table.get_item(Key={"pk": f"USER#{user}", "sk": f"CHANNEL#{channel_id}"}, ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            raise NotFound(channel_id)
        return item

    def list_channels(self, user: str) -> list[dict]:
        from boto3.dynamodb.conditions import Key

        return self._query_all(
            KeyConditionExpression=Key("pk").eq(f"USER#{user}") & Key("sk").begins_with("CHANNEL#"),
            ConsistentRead=True,
        )

    def remove_channel(self, user: str, channel_id: str) -> None:
        if not self._delete_counted(user, f"CHANNEL#{channel_id}", "channel_count"):
            raise NotFound(channel_id)

    # ----- firings and events

    def claim_firing(self, firing_id: str, rule: dict, event_key: str) -> dict | None:
        """Record a firing before publishing it. None if it is new (ours to publish);
        otherwise the existing record, whose status says what happened."""
        record = {
            "pk": f"FIRING#{firing_id}",
            "sk": "FIRING",
            "status": "publishing",
            "rule_id": rule["id"],
            "event_key": event_key,
            "attempts": 1,
            "created_at": now_iso(),
            "expires": int(time.time()) + FIRING_KEEP_S,
        }
        try:
            self.table.put_item(Item=record, ConditionExpression="attribute_not_exists(pk)")
            return None
        except self.client.exceptions.ConditionalCheckFailedException:
            return self.table.get_item(Key={"pk": f"FIRING#{firing_id}", "sk": "FIRING"}, ConsistentRead=True)["Item"]

    def retry_firing(self, firing_id: str) -> bool:
        """Take a failed firing back for another publish; False if someone else did."""
        try:
            self.table.update_item(
                Key={"pk": f"FIRING#{firing_id}", "sk": "FIRING"},
                UpdateExpression="SET #s = :publishing ADD attempts :one",
                ConditionExpression="#s = :failed",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":publishing": "publishing", ":failed": "failed", ":one": 1},
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def record_firing(
        self,
        firing_id: str,
        status: str,
        message_id: str | None,
        rule: dict,
        event_key: str,
        event: dict,
        rule_state: dict | None,
    ) -> None:
        """After publishing: the event, the firing's outcome, then the rule's new state.

        Three plain writes in this order rather than one transaction: DynamoDB
        would take either, but moto copies the whole table for every transaction
        (a second per firing on 10,000 rules), and the order alone keeps a crash
        harmless: the firing record still says "publishing", so nothing is resent,
        and the next check brings the rule's state up to date.
        """
        item = {"pk": rule["pk"], "sk": f"EVENT#{event_key}", "type": "event", **event}
        self.table.put_item(Item=to_dynamo({k: v for k, v in item.items() if v is not None}))
        values = {":s": status}
        expression = "SET #s = :s"
        if message_id:
            expression += ", message_id = :m"
            values[":m"] = message_id
        self.table.update_item(
            Key={"pk": f"FIRING#{firing_id}", "sk": "FIRING"},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        if rule_state:
            self.set_rule_state(rule, **rule_state)

    def list_events(self, user: str, limit: int, start_after: str | None = None) -> tuple[list[dict], str | None]:
        from boto3.dynamodb.conditions import Key

        kwargs = {
            "KeyConditionExpression": Key("pk").eq(f"USER#{user}") & Key("sk").begins_with("EVENT#"),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_after:
            kwargs["ExclusiveStartKey"] = {"pk": f"USER#{user}", "sk": f"EVENT#{start_after}"}
        page = self.table.query(**kwargs)
        events = [from_dynamo({k: v for k, v in e.items() if k not in ("pk", "sk", "type")}) for e in page["Items"]]
        last = page.get("LastEvaluatedKey")
        return events, (last["sk"][len("EVENT#") :] if last else None)

    def _query_all(self, **kwargs) -> list[dict]:
        items, start = [], None
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = self.table.query(**kwargs)
            items.extend(page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                return items


def _dynamodb(method):
    """A store method whose DynamoDB failures (after the SDK's retries) are the one 503
    every route and the check know: unreachable, too slow, throttled, or an answer it
    could not read (``shared.errors.aws_failures``)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        from shared.errors import aws_failures, aws_unavailable

        try:
            return method(*args, **kwargs)
        except aws_failures() as exc:
            log.error("DynamoDB failed in %s: %s: %s", method.__name__, type(exc).__name__, exc)
            raise aws_unavailable(exc, "storage_unavailable", "the alerts store (DynamoDB)", "dynamodb") from exc

    return wrapper


for _name, _method in list(vars(AlertStore).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(AlertStore, _name, _dynamodb(_method))
