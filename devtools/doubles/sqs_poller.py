"""Lambda's SQS event source, played locally (make run, the CLI's ``check``, the tests):
the same queue (moto's), the same handler, the same contract.

- It receives up to ``batch_size`` messages (long polling), invokes the handler with the
  event Lambda would send (``Records`` with ``messageId``, ``receiptHandle``, ``body``,
  ``attributes.ApproximateReceiveCount``), and deletes every message the answer's
  ``batchItemFailures`` does not name.
- A failed message is left alone: SQS makes it visible again when its visibility
  timeout ends, and the queue's redrive policy (SQS's own, moto's here) moves it to the
  dead-letter queue after ``maxReceiveCount`` receives.
- A handler that raises fails the whole batch, as in Lambda.

``python -m devtools.doubles.sqs_poller --workers 3`` runs worker processes for make run, each
importing the alerts app and calling its ``alerts-worker`` handler as Lambda does.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def create_work_queue(sqs, sns, name: str, visibility_s: int = 60, max_receives: int = 3) -> tuple[str, str, str]:
    """The work topic, its queue (raw delivery) and the queue's dead-letter queue, as the
    stateful stack declares them: (topic arn, queue url, dead-letter queue url)."""
    import json

    dead = sqs.create_queue(QueueName=f"{name}-dead")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_s),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(max_receives)}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return topic, queue, dead


class EventSource:
    """One poller: ``invoke(event) -> answer`` is the function."""

    def __init__(
        self, sqs, queue_url: str, invoke: Callable[[dict], dict | None], batch_size: int = 2, wait_s: int = 1
    ):
        self.sqs = sqs
        self.queue_url = queue_url
        self.invoke = invoke
        self.batch_size = batch_size
        self.wait_s = wait_s
        self.invocations = 0
        self.failures = 0

    def poll_once(self) -> int:
        """One receive and, if it got anything, one invocation: the messages received."""
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, self.batch_size),
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return 0
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:local",
                    "awsRegion": "us-east-1",
                }
                for m in got
            ]
        }
        self.invocations += 1
        try:
            answer = self.invoke(event) or {}
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        except Exception as exc:  # noqa: BLE001 - as Lambda: the whole batch failed, SQS retries it
            log.error("the worker failed the batch: %s: %s", type(exc).__name__, exc)
            failed = {m["MessageId"] for m in got}
        self.failures += len(failed)
        for message in got:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(got)

    def waiting(self) -> int:
        """Messages in the queue, visible or being worked on."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def drain(self, done: Callable[[], bool] = lambda: False, timeout_s: float = 120.0, workers: int = 1) -> bool:
        """Poll (with ``workers`` threads) until ``done()`` or nothing is left in the queue:
        whether it ended so before the timeout."""
        deadline = time.monotonic() + timeout_s
        stop = threading.Event()

        def poll():
            while not stop.is_set() and time.monotonic() < deadline:
                if self.poll_once():
                    continue
                if done() or not self.waiting():
                    return
                if not self.wait_s:
                    # Without a long poll: what is left is in another poller's hands (or
                    # not visible yet); look again shortly rather than spin.
                    time.sleep(0.05)

        threads = [threading.Thread(target=poll, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + self.wait_s + 5)
        stop.set()
        return time.monotonic() < deadline


def app_worker(alerts_dir: str):
    """The alerts app's ``alerts-worker`` handler, called as Lambda calls it."""
    sys.path.insert(0, alerts_dir)
    import importlib

    module = importlib.import_module("app")

    class Context:
        aws_request_id = "local"
        function_name = "alerts-worker"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 60_000

    return lambda event: module.alerts_worker(event, Context())


def _worker_process(queue_url: str, batch_size: int) -> None:
    from pathlib import Path

    from shared.config import Settings
    from shared.runtime import Runtime

    invoke = app_worker(str(Path(__file__).resolve().parents[2] / "alerts"))
    sqs = Runtime._aws_for(Settings.from_env(), "client", "sqs", read_timeout_s=30)
    source = EventSource(sqs, queue_url, invoke, batch_size, wait_s=5)
    while True:
        try:
            source.poll_once()
        except Exception as exc:  # noqa: BLE001 - the queue unreachable a moment: keep polling, as the event source does
            log.warning("polling the work queue failed: %s", exc)
            time.sleep(2)


def main(argv=None) -> int:
    from shared.config import Settings, with_local_defaults

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default ALERTS_LOCAL_WORKERS)")
    # As the alerts-worker's event source takes them (alerts/chalicelib/fanout.py WORKER_BATCH).
    parser.add_argument("--batch-size", type=int, default=2, help="messages an invocation takes at most")
    args = parser.parse_args(argv)
    settings = Settings.from_env(with_local_defaults(dict(os.environ)))
    workers = args.workers or settings.alerts_local_workers
    processes = [
        multiprocessing.Process(
            target=_worker_process, args=(settings.alerts_work_queue_url, args.batch_size), daemon=True
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    print(f"[alerts-worker] {workers} worker processes polling {settings.alerts_work_queue_url}", flush=True)
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
