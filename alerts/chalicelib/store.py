"""Alert rules, events, firing records, check records and the symbol registry in one
DynamoDB table.

Keys (``pk``, ``sk``):

| item | pk | sk |
|---|---|---|
| rule | ``USER#{user}`` | ``RULE#{id}`` |
| delivery channel | ``USER#{user}`` | ``CHANNEL#{id}`` |
| the user's counts, SNS topic and webhook signing secret | ``USER#{user}`` | ``META`` |
| event (what fired) | ``USER#{user}`` | ``EVENT#{fired_at}#{rule id}`` |
| firing record | ``FIRING#{firing id}`` | ``FIRING`` |
| a symbol's enabled rules, counted (the registry) | ``SYMBOLS#{0..7}`` | ``SYMBOL#{symbol}`` |
| a check and its progress (``checks.py``) | ``CHECK#{check id}`` | ``CHECK`` |

``{user}`` is the account's Cognito ``sub``.

"All rules of a user" is one query on ``pk``. "The enabled rules of a symbol" is one
query of the sparse index ``enabled-rules`` (``gsi1pk`` = ``ENABLED#{symbol}``,
``gsi1sk`` = the rule id): only enabled rules carry its keys, and a check's shard reads
its symbols' rules so, never scanning. The registry says which symbols have enabled
rules (and how many need a live price): the planner reads eight small partitions
instead of every rule. It is kept exact by writing it in the same transaction as the
rule (created, changed, deleted, disabled), each conditional on the rule being as read.
"The firings of a check waiting to be delivered" is the sparse index ``pending-firings``
(``gsi2pk`` = ``PENDING#{check}#{bucket}``, ``gsi2sk`` = ``{user}#{firing id}``): a
firing carries its keys while it waits, so a delivery reads only what is left to send.
Firing and check records expire through DynamoDB TTL (``expires``) after 30 days.
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

from .errors import ChannelExists, ChannelLimitReached, NotFound, RuleLimitReached
from .records import Rule, from_dynamo

log = logging.getLogger(__name__)

ENABLED_INDEX = "enabled-rules"
PENDING_INDEX = "pending-firings"
# (index, its key attributes): the table's indexes, as the template declares them.
INDEXES = ((ENABLED_INDEX, "gsi1pk", "gsi1sk"), (PENDING_INDEX, "gsi2pk", "gsi2sk"))

REGISTRY_PARTITIONS = 8
# The count of the users' SNS topics (one per user with a channel), against the quota.
TOPICS = {"pk": "TOPICS", "sk": "COUNT"}
FIRING_KEEP_S = 30 * 86400


def _channels():
    from . import channels

    return channels


def now_iso() -> str:
    # Milliseconds: rules and channels are listed in the order they were made, and two
    # made within one second (a script, the dashboard's quick clicks) must not tie.
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def registry_key(symbol: str) -> dict:
    """The registry item of ``symbol``: spread over a few partitions so that rules being
    created for many symbols at once do not all write one."""
    partition = int(hashlib.sha256(symbol.encode()).hexdigest(), 16) % REGISTRY_PARTITIONS
    return {"pk": f"SYMBOLS#{partition}", "sk": f"SYMBOL#{symbol}"}


def needs_quote(rule: dict) -> bool:
    """Whether the rule reads the live price (its symbol is quoted at each check)."""
    from .condition import ConditionError, parse

    try:
        return parse(rule["condition"]).needs_quote()
    except ConditionError:
        return False


def contribution(rule: dict | None) -> tuple[str, int, int] | None:
    """What a rule adds to the registry: (symbol, enabled rules, quoted rules)."""
    if not rule or not rule.get("enabled"):
        return None
    return rule["symbol"], 1, int(needs_quote(rule))


class Changed(Exception):
    """The rule changed between reading it and writing it: read it again."""


def to_dynamo(value):
    """Floats become Decimals (DynamoDB has no float type)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_dynamo(v) for v in value]
    return value


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
        if self._put_counted(item, "rule_count", max_rules, self._registry_updates(None, item)) == "limit":
            raise RuleLimitReached(f"a user may keep at most {max_rules} rules")
        return item

    def _index_keys(self, item: dict) -> dict:
        """Enabled rules carry the sparse index keys; disabled ones do not."""
        item = dict(item)
        if item.get("enabled"):
            item["gsi1pk"] = f"ENABLED#{item['symbol']}"
            item["gsi1sk"] = item["id"]
        else:
            item.pop("gsi1pk", None)
            item.pop("gsi1sk", None)
        return item

    def _registry_updates(self, before: dict | None, after: dict | None) -> list[dict]:
        """The registry's share of a rule's change: one Update per symbol whose counts move."""
        deltas: dict[str, list[int]] = {}
        for sign, rule in ((-1, before), (1, after)):
            counted = contribution(rule)
            if counted:
                symbol, rules, quoted = counted
                delta = deltas.setdefault(symbol, [0, 0])
                delta[0] += sign * rules
                delta[1] += sign * quoted
        return [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": registry_key(symbol),
                    "UpdateExpression": "ADD #r :r, #q :q SET #s = :s",
                    "ExpressionAttributeNames": {"#r": "rules", "#q": "quoted", "#s": "symbol"},
                    "ExpressionAttributeValues": {":r": rules, ":q": quoted, ":s": symbol},
                }
            }
            for symbol, (rules, quoted) in sorted(deltas.items())
            if rules or quoted
        ]

    @staticmethod
    def _as_read(rule: dict) -> tuple[str, dict, dict]:
        """A condition that holds while the rule is as read (what its registry share is)."""
        names = {"#sym": "symbol", "#cond": "condition"}
        values = {":sym": rule["symbol"], ":cond": rule["condition"]}
        if rule.get("enabled"):
            expression = "#sym = :sym AND #cond = :cond AND #en = :true"
            names["#en"] = "enabled"
            values[":true"] = True
        else:
            expression = "#sym = :sym AND #cond = :cond AND (attribute_not_exists(#en) OR #en = :false)"
            names["#en"] = "enabled"
            values[":false"] = False
        return expression, names, values

    def get_rule(self, user: str, rule_id: str) -> dict:
        item = self.table.get_item(Key={"pk": f"USER#{user}", "sk": f"RULE#{rule_id}"}, ConsistentRead=True).get("Item")
        if item is None:
            raise NotFound("rule", rule_id)
        return item

    def list_rules(self, user: str) -> list[dict]:
        from boto3.dynamodb.conditions import Key

        return self._query_all(KeyConditionExpression=Key("pk").eq(f"USER#{user}") & Key("sk").begins_with("RULE#"))

    def update_rule(self, user: str, rule_id: str, changes: dict) -> dict:
        """Apply ``changes`` (user-editable fields); resets the trigger state."""
        for _ in range(5):
            current = self.get_rule(user, rule_id)
            item = {**current, **changes, "updated_at": now_iso(), "armed": True, "last_error": None}
            item = {k: v for k, v in self._index_keys(item).items() if v is not None}
            condition, names, values = self._as_read(current)
            put = {
                "Put": {
                    "TableName": self.table.name,
                    "Item": to_dynamo(item),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": to_dynamo(values),
                }
            }
            try:
                self._transact([put, *self._registry_updates(current, item)])
                return item
            except Changed:
                continue
        raise Changed(f"rule {rule_id} kept changing while being updated")

    def delete_rule(self, user: str, rule_id: str) -> None:
        for _ in range(5):
            current = self.get_rule(user, rule_id)  # NotFound: nothing to delete
            condition, names, values = self._as_read(current)
            delete = {
                "Delete": {
                    "TableName": self.table.name,
                    "Key": {"pk": current["pk"], "sk": current["sk"]},
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": to_dynamo(values),
                }
            }
            uncount = {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"pk": f"USER#{user}", "sk": "META"},
                    "UpdateExpression": "ADD rule_count :minus",
                    "ExpressionAttributeValues": {":minus": -1},
                }
            }
            try:
                self._transact([delete, uncount, *self._registry_updates(current, None)])
                return
            except Changed:
                continue
        raise Changed(f"rule {rule_id} kept changing while being deleted")

    def _transact(self, items: list[dict]) -> None:
        """One transaction; ``Changed`` when a condition failed (or another transaction
        on the same items was in flight)."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
            if reasons & {"ConditionalCheckFailed", "TransactionConflict"}:
                raise Changed(str(reasons)) from None
            raise

    # ----- a user's items kept under a limit (rules, channels), counted on their META item

    def _put_counted(self, item: dict, counter: str, limit: int, also: list[dict] | None = None) -> str | None:
        """Put a new item of a user's and count it, in one transaction (with ``also``):
        None when done, "limit" when the user has ``limit`` already, "exists" when the item does."""
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
                    *(also or []),
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

    # ----- what a check reads

    def symbols_with_rules(self) -> dict[str, tuple[int, int]]:
        """symbol -> (enabled rules, of which quoted): the registry, in eight small queries."""
        from concurrent.futures import ThreadPoolExecutor

        from boto3.dynamodb.conditions import Key

        def partition(n):
            return self._query_all(KeyConditionExpression=Key("pk").eq(f"SYMBOLS#{n}"))

        out = {}
        with ThreadPoolExecutor(max_workers=REGISTRY_PARTITIONS) as pool:
            for items in pool.map(partition, range(REGISTRY_PARTITIONS)):
                for item in items:
                    if int(item.get("rules", 0)) > 0:
                        out[item["symbol"]] = (int(item["rules"]), int(item.get("quoted", 0)))
        return out

    def reindex(self) -> dict:
        """Every rule's index keys rewritten and the registry counted again from the rules:
        after the keys' layout changed, or to repair a registry. A full scan: an operator's
        tool, for a quiet moment (a rule edited meanwhile is corrected by running it again)."""
        from boto3.dynamodb.conditions import Attr

        counts: dict[str, list[int]] = {}
        rules = rewritten = 0
        start = None
        while True:
            page = self.table.scan(
                FilterExpression=Attr("type").eq("rule"), **({"ExclusiveStartKey": start} if start else {})
            )
            for rule in page["Items"]:
                rules += 1
                keyed = self._index_keys(rule)
                if (keyed.get("gsi1pk"), keyed.get("gsi1sk")) != (rule.get("gsi1pk"), rule.get("gsi1sk")):
                    self.table.put_item(Item=keyed)
                    rewritten += 1
                counted = contribution(rule)
                if counted:
                    entry = counts.setdefault(counted[0], [0, 0])
                    entry[0] += counted[1]
                    entry[1] += counted[2]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        stale = set(self.symbols_with_rules()) - set(counts)
        for symbol in stale:
            counts[symbol] = [0, 0]
        for symbol, (enabled, quoted) in counts.items():
            self.table.put_item(Item={**registry_key(symbol), "symbol": symbol, "rules": enabled, "quoted": quoted})
        return {"rules": rules, "keys_rewritten": rewritten, "symbols": len(counts) - len(stale), "cleared": len(stale)}

    def rules_of(self, symbol: str) -> list[Rule]:
        """The enabled rules of ``symbol`` (the index: eventually consistent)."""
        from boto3.dynamodb.conditions import Key

        items = self._query_all(IndexName=ENABLED_INDEX, KeyConditionExpression=Key("gsi1pk").eq(f"ENABLED#{symbol}"))
        return [Rule.from_item(from_dynamo(item)) for item in items]

    def _state_update(self, key: dict, state: dict) -> dict:
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
            "Key": key,
            "UpdateExpression": expression.strip(),
            # Deleted meanwhile: leave it deleted rather than recreate a fragment.
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
        }
        if values:
            update["ExpressionAttributeValues"] = values
        return update

    def set_rule_state(self, rule: Rule, **state) -> None:
        """Trigger state after a check (armed, cycle, enabled, last_fired_at, last_error).
        Disabling an enabled rule takes it out of the registry in the same transaction."""
        update = self._state_update(rule.key, state)
        if state.get("enabled") is False:
            update["ConditionExpression"] = "#en = :true"
            update["ExpressionAttributeNames"]["#en"] = "enabled"
            update.setdefault("ExpressionAttributeValues", {})[":true"] = True
            try:
                self._transact(
                    [
                        {"Update": {"TableName": self.table.name, **update}},
                        *self._registry_updates(rule.registry_fields(), None),
                    ]
                )
            except Changed:
                return  # disabled or deleted meanwhile: its registry share went with that
            return
        try:
            self.table.update_item(**update)
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
            raise ChannelLimitReached(f"a user may keep at most {max_channels} channels")
        if refused == "exists":
            raise ChannelExists(f"there is a channel for {_channels().target_of(channel)} already")
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
            raise NotFound("channel", channel_id)
        return item

    def list_channels(self, user: str) -> list[dict]:
        from boto3.dynamodb.conditions import Key

        return self._query_all(
            KeyConditionExpression=Key("pk").eq(f"USER#{user}") & Key("sk").begins_with("CHANNEL#"),
            ConsistentRead=True,
        )

    def remove_channel(self, user: str, channel_id: str) -> int:
        """Delete a channel; how many the user has left."""
        if not self._delete_counted(user, f"CHANNEL#{channel_id}", "channel_count"):
            raise NotFound("channel", channel_id)
        return int(self.user_meta(user).get("channel_count", 0) or 0)

    # ----- the account's SNS topics, counted against its quota (100,000 by default)

    def reserve_topic(self, user: str, limit: int) -> bool:
        """Count the user's topic against ``limit``, once per user: False when the account
        holds ``limit`` topics already (a user whose topic is counted always gets True)."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": TOPICS,
                            "UpdateExpression": "ADD topics :one",
                            "ConditionExpression": "attribute_not_exists(topics) OR topics < :max",
                            "ExpressionAttributeValues": {":one": 1, ":max": limit},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": {"pk": f"USER#{user}", "sk": "META"},
                            "UpdateExpression": "SET topic_counted = :true",
                            "ConditionExpression": "attribute_not_exists(topic_counted)",
                            "ExpressionAttributeValues": {":true": True},
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return True  # counted already
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def release_topic(self, user: str) -> bool:
        """Uncount the user's topic once they have no channel left (its topic deleted);
        False if they have one again meanwhile, or it was not counted."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": {"pk": f"USER#{user}", "sk": "META"},
                            "UpdateExpression": "REMOVE topic_counted, topic_arn",
                            "ConditionExpression": "topic_counted = :true AND (attribute_not_exists(channel_count) OR channel_count = :zero)",
                            "ExpressionAttributeValues": {":true": True, ":zero": 0},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": TOPICS,
                            "UpdateExpression": "ADD topics :minus",
                            "ExpressionAttributeValues": {":minus": -1},
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException:
            return False
        return True

    def topics_in_use(self) -> int:
        item = self.table.get_item(Key=TOPICS, ConsistentRead=True).get("Item") or {}
        return int(item.get("topics", 0))

    # ----- firings and events

    def claim_firing(self, firing: dict) -> dict | None:
        """Record a firing, to be delivered, before anything is sent. None if it is new
        (it now waits in the check's pending index); otherwise the existing record, whose
        status says what became of it. ``firing``: the fields ``checks.Firing.record`` gives."""
        record = {
            "pk": f"FIRING#{firing['firing_id']}",
            "sk": "FIRING",
            "status": "pending",
            "attempts": 1,
            "created_at": now_iso(),
            "expires": int(time.time()) + FIRING_KEEP_S,
            **firing,
        }
        try:
            self.table.put_item(Item=to_dynamo(record), ConditionExpression="attribute_not_exists(pk)")
            return None
        except self.client.exceptions.ConditionalCheckFailedException:
            key = {"pk": f"FIRING#{firing['firing_id']}", "sk": "FIRING"}
            return self.table.get_item(Key=key, ConsistentRead=True)["Item"]

    def retry_firing(self, firing: dict, was: str = "failed") -> bool:
        """Take a firing back for this check's delivery: one SNS certainly refused
        (``was="failed"``), or one still waiting for a check whose delivery never came
        (``was="pending"``, another check's). False if someone else did meanwhile."""
        names = {"#s": "status", "#c": "check"}
        values: dict = {":pending": "pending", ":was": was, ":one": 1, ":this": firing["check"]}
        sets = ["#s = :pending"]
        for i, name in enumerate(("bucket", "gsi2pk", "gsi2sk", "entry", "state", "rule")):
            names[f"#k{i}"] = name
            values[f":k{i}"] = to_dynamo(firing[name])
            sets.append(f"#k{i} = :k{i}")
        sets.append("#c = :this")
        try:
            self.table.update_item(
                Key={"pk": f"FIRING#{firing['firing_id']}", "sk": "FIRING"},
                UpdateExpression="SET " + ", ".join(sets) + " ADD attempts :one",
                ConditionExpression="#s = :was AND #c <> :this",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def pending_firings(self, check: str, bucket: int) -> list[dict]:
        """The firings of a check's delivery bucket still waiting (the index: a firing
        taken a moment ago may still show; ``take_firing`` settles it)."""
        from boto3.dynamodb.conditions import Key

        items = self._query_all(
            IndexName=PENDING_INDEX, KeyConditionExpression=Key("gsi2pk").eq(f"PENDING#{check}#{bucket}")
        )
        return [from_dynamo(item) for item in items]

    def take_firing(self, firing_id: str, check: str) -> bool:
        """Take a pending firing for publishing, once: out of the pending index, and
        never published again whatever happens next (a crash after SNS took it must not
        send it twice). False if another delivery took it."""
        try:
            self.table.update_item(
                Key={"pk": f"FIRING#{firing_id}", "sk": "FIRING"},
                UpdateExpression="SET #s = :publishing REMOVE gsi2pk, gsi2sk",
                ConditionExpression="#s = :pending AND #c = :check",
                ExpressionAttributeNames={"#s": "status", "#c": "check"},
                ExpressionAttributeValues={":publishing": "publishing", ":pending": "pending", ":check": check},
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def record_firings(self, outcomes: list[tuple[dict, dict]], status: str, message_id: str | None) -> None:
        """After publishing: each firing's event and its record's outcome (one batch write
        for all of a user's), then each rule's new state.

        Not one transaction: the order alone keeps a crash harmless. Until the batch is in,
        the firing records say "publishing", so nothing is resent, and the next check
        brings the rules' states up to date.
        """
        if not outcomes:
            return
        items = []
        for firing, event in outcomes:
            items.append(
                {"pk": f"USER#{firing['user']}", "sk": f"EVENT#{firing['event_key']}", "type": "event", **event}
            )
            record = {k: v for k, v in firing.items() if k not in ("gsi2pk", "gsi2sk")}
            items.append(
                {
                    **record,
                    "pk": f"FIRING#{firing['firing_id']}",
                    "sk": "FIRING",
                    "status": status,
                    "message_id": message_id,
                }
            )
        with self.table.batch_writer() as batch:
            for item in items:
                batch.put_item(Item=to_dynamo({k: v for k, v in item.items() if v is not None}))
        if status != "failed":
            for firing, _ in outcomes:
                if firing.get("state"):
                    rule = Rule.from_item(from_dynamo({**firing["rule"], "user": firing["user"]}))
                    self.set_rule_state(rule, **firing["state"])

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
