"""A check's firings, delivered: one bucket of users at a time, one message per user per
check listing every firing of theirs (``notify.py``), to that user's own SNS topic.

The firings waiting in a bucket are one index query. Each is *taken* (pending ->
publishing, conditionally) before its message is published, so two deliveries of one
bucket (SQS at least once, or the next check delivering a late one's) never send a
firing twice; a firing taken and then lost to a crash is never resent (it may have been
delivered) and the next check brings its rule's state up to date. SNS refusing a
message (certainly not delivered) marks its firings failed, and the next check sends
them again if their condition still holds. Where a user's alerts go (topic, channel
count, webhook secret) is read from their ``META`` item: no SNS call per user.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .checks import CheckReport, CheckStore
from .notify import Publisher, messages_for
from .store import AlertStore

log = logging.getLogger(__name__)


def run_delivery(
    check: str, bucket: int, store: AlertStore, checks: CheckStore, publisher: Publisher, settings
) -> CheckReport | None:
    """Deliver one bucket; the check's report if this delivery completed the check."""
    waiting = store.pending_firings(check, bucket)
    by_user: dict[str, list[dict]] = {}
    for firing in waiting:
        by_user.setdefault(firing["user"], []).append(firing)
    totals: Counter = Counter()
    with ThreadPoolExecutor(settings.alerts_fire_concurrency, thread_name_prefix="alerts-deliver") as pool:
        for counts in pool.map(lambda item: deliver_user(check, item[0], item[1], store, publisher), by_user.items()):
            totals.update(counts)
    # Counted with the bucket, once (one write to the check's record, not one per user: it
    # is one item every delivery of the check writes). A bucket redelivered after a crash
    # counts what its second run did.
    record = checks.delivery_done(check, bucket, dict(totals))
    if record is None:
        record = checks.get(check)
        if record is None:
            return None
    if len(record.get("delivered", ())) < int(record.get("buckets", 1)) or record.get("status") == "completed":
        return None
    if len(record.get("done", ())) < int(record.get("shards", 0)):
        return None  # a late check's deliveries, sent before its last shard: that shard completes it
    completed = checks.complete(check)
    return CheckReport.of(completed) if completed else None


def deliver_user(check: str, user: str, firings: list[dict], store: AlertStore, publisher: Publisher) -> dict:
    """One user's waiting firings of this check, as one message (several only past SNS's
    size limit): the counts of what happened."""
    counts: Counter = Counter()
    try:
        meta = store.user_meta(user)
    except Exception as exc:  # noqa: BLE001 - where it goes is unknown now: the next check sends it
        log.warning("cannot read where a user's alerts go, their firings wait for the next check: %s", exc)
        taken = [f for f in firings if store.take_firing(f["firing_id"], check)]
        store.record_firings([(f, {**f["entry"], "delivery": "failed"}) for f in taken], "failed", None)
        counts["delivery_failed"] += len(taken)
        return counts
    taken = [f for f in firings if store.take_firing(f["firing_id"], check)]
    if not taken:
        return counts
    topic = meta.get("topic_arn") if int(meta.get("channel_count", 0) or 0) > 0 else None
    channels = int(meta.get("channel_count", 0) or 0) if topic else 0
    if not topic:
        outcomes = [(f, {**f["entry"], "delivery": "no_channel", "channels": 0}) for f in taken]
        store.record_firings(outcomes, "no_channel", None)
        counts["undelivered"] += len(taken)
        return counts
    by_id = {f["firing_id"]: f for f in taken}
    for subject, message, entries in messages_for(user, [f["entry"] for f in taken], meta.get("webhook_secret")):
        status, message_id = publisher.publish(topic, subject, message)
        counts["messages"] += status in ("sent", "unknown")
        outcomes = [
            (by_id[e["firing_id"]], {**e, "delivery": status, "message_id": message_id, "channels": channels})
            for e in entries
        ]
        store.record_firings(outcomes, status, message_id)
        if status == "sent":
            counts["fired"] += len(entries)
        elif status == "failed":
            counts["delivery_failed"] += len(entries)
    return counts
