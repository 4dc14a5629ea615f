"""A check's units of work and how they travel: each is one SQS message, published to
the stage's work topic (SNS, reachable over IPv6 from the VPC's functions, which have
no route to SQS's IPv4-only endpoint without a NAT gateway) and delivered by SNS to the
work queue, whose event source runs the ``alerts-worker`` function (raw message
delivery: the body is the message).

- ``Shard``: evaluate the enabled rules of some symbols (all of a symbol's rules are in
  one shard, so its state and its quote are read once), with the quotes the planner got.
- ``Delivery``: send a check's firings waiting in one delivery bucket, one message per
  user.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

log = logging.getLogger(__name__)

# SNS PublishBatch takes 10 messages a call.
BATCH = 10


@dataclass(frozen=True)
class Shard:
    check: str
    number: int
    day: str  # the trading day the check runs in (New York)
    due: str  # the latest session whose bar history should hold
    symbols: list[str]
    # symbol -> {"price", "as_of", "change_pct", "stale", "age_s"}: symbols whose rules read it
    quotes: dict[str, dict] = field(default_factory=dict)
    # symbol -> why it has no usable quote (an error code: stale_quote, upstream_unavailable, ...)
    quote_errors: dict[str, str] = field(default_factory=dict)
    buckets: int = 1
    kind: str = "shard"


@dataclass(frozen=True)
class Delivery:
    check: str
    bucket: int
    kind: str = "delivery"


def to_body(unit: Shard | Delivery) -> str:
    return json.dumps(asdict(unit), separators=(",", ":"))


def from_body(body: str) -> Shard | Delivery:
    """The unit a message carries; ``ValueError`` for anything else."""
    try:
        raw = json.loads(body)
        kind = raw.pop("kind")
        if kind == "shard":
            return Shard(**raw)
        if kind == "delivery":
            return Delivery(**raw)
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a unit of a check's work: {exc}") from None
    raise ValueError(f"not a unit of a check's work: kind {kind!r}")


class WorkQueue:
    """Sends units of work: PublishBatch, ten at a time, each entry that SNS refused
    sent again (with backoff) until every one is taken or the attempts run out."""

    def __init__(self, sns, topic_arn: str, attempts: int = 4):
        self.sns = sns
        self.topic_arn = topic_arn
        self.attempts = attempts

    def send(self, units: list[Shard | Delivery]) -> None:
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        if not units:
            return
        if not self.topic_arn:
            raise RuntimeError("ALERTS_WORK_TOPIC_ARN is not set: a check's work has nowhere to go")
        left = {str(i): to_body(unit) for i, unit in enumerate(units)}
        for attempt in Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type(Unsent),
            reraise=True,
        ):
            with attempt:
                ids = list(left)
                for i in range(0, len(ids), BATCH):
                    chunk = ids[i : i + BATCH]
                    answer = self.sns.publish_batch(
                        TopicArn=self.topic_arn,
                        PublishBatchRequestEntries=[{"Id": n, "Message": left[n]} for n in chunk],
                    )
                    for ok in answer.get("Successful", []):
                        left.pop(ok["Id"], None)
                if left:
                    raise Unsent(f"{len(left)} of {len(units)} units of work not taken by SNS")


class Unsent(Exception):
    pass
