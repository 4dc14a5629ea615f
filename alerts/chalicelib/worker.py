"""The ``alerts-worker`` function: a batch of a check's units of work from the work
queue's event source, each a shard or a delivery (``work.py``).

A record that fails (a dependency down past its retries) is named in the answer's
``batchItemFailures``: SQS makes it visible again after the queue's visibility timeout
and the event source retries it, up to the redrive policy's count, then moves it to the
dead-letter queue (alarmed). The others of the batch are done and deleted. A record
that is not a unit of work at all is logged and dropped: retrying cannot fix it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.observability import note

from .checks import CheckReport
from .delivery import run_delivery
from .shard import run_shard
from .work import Delivery, from_body

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What a batch did: failed message ids, and the checks it completed."""

    failed: list[str] = field(default_factory=list)
    completed: list[CheckReport] = field(default_factory=list)
    shards: int = 0
    deliveries: int = 0
    rules: int = 0

    def response(self) -> dict:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.failed]}


def handle_batch(records: list[dict], store, checks, database, publisher, work, settings) -> BatchOutcome:
    """``records``: the SQS event's ``Records`` (``messageId``, ``body``)."""
    outcome = BatchOutcome()
    for record in records:
        message_id = record.get("messageId", "")
        try:
            unit = from_body(record.get("body", ""))
        except ValueError as exc:
            log.error("dropped a message that is not a check's work (%s): %s", message_id, exc)
            continue
        try:
            if isinstance(unit, Delivery):
                outcome.deliveries += 1
                report = run_delivery(unit.check, unit.bucket, store, checks, publisher, settings)
                if report is not None:
                    outcome.completed.append(report)
            else:
                outcome.shards += 1
                run = run_shard(unit, store, checks, database, work, settings)
                outcome.rules += run.counts["rules_seen"]
        except Exception as exc:  # noqa: BLE001 - this record is retried by SQS; the others go on
            log.error("%s of check %s failed, SQS retries it: %s: %s", unit.kind, unit.check, type(exc).__name__, exc)
            outcome.failed.append(message_id)
    note(shards=outcome.shards, deliveries=outcome.deliveries, rules=outcome.rules, failed=len(outcome.failed))
    return outcome
