"""Alerts from the command line: accounts, one check, a local schedule, local setup.

python -m alerts.chalicelib.cli user create --email ann@example.com [--password ...]  # an account (operator)
python -m alerts.chalicelib.cli token --email ann@example.com --password ...           # its access token
python -m alerts.chalicelib.cli check                     # one whole check: the planner, then its workers
python -m alerts.chalicelib.cli loop [--interval 60]      # what make run does: chalice local never fires schedules
python -m alerts.chalicelib.cli setup                     # the table, the user pool and the work queue (moto, local)
python -m alerts.chalicelib.cli reindex                   # rebuild the symbol registry and the rules' index keys

``user create`` without ``--password`` has Cognito email a temporary password,
to be changed at the first sign-in; with it, the password is set for good and no
email is sent. Both need the operator's own AWS credentials (cognito-idp:
AdminCreateUser, AdminSetUserPassword): no Lambda has them. ``token`` signs in
as the dashboard does (the password goes to Cognito only) and prints the access
token, for curl. A password can also come from ``ALERTS_PASSWORD``, so that it
is not left in the shell's history.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from shared.observability import configure_logging, record_run

from .accounts import AccountError, create_pool, create_user, sign_in
from .checks import CheckReport
from .planner import plan_check
from .store import INDEXES


def run_worker_batch(runtime, event: dict) -> dict:
    """What the ``alerts-worker`` function does with one batch, in this process."""
    from .worker import handle_batch

    outcome = handle_batch(
        event["Records"],
        runtime.alert_store,
        runtime.checks,
        runtime.database,
        runtime.publisher,
        runtime.work_queue,
        runtime.settings,
    )
    for report in outcome.completed:
        record_run("alerts", runtime.settings.stage, report.job, report)
    return outcome.response()


def check_once(runtime, timeout_s: float = 600.0) -> dict:
    """One whole check: the plan, then its shards and deliveries from the work queue, by
    ``ALERTS_LOCAL_WORKERS`` pollers in this process (and any other workers polling it),
    until the check completes: its report."""
    from devtools.doubles.sqs_poller import EventSource

    from .fanout import WORKER_BATCH

    settings = runtime.settings
    planned = plan_check(runtime.alert_store, runtime.checks, runtime.quotes, runtime.work_queue, settings)
    if not planned.check or planned.completed or planned.failure():
        return planned.to_dict()
    sqs = runtime._aws("client", "sqs", read_timeout_s=30)
    source = EventSource(sqs, settings.alerts_work_queue_url, lambda e: run_worker_batch(runtime, e), WORKER_BATCH)

    def completed() -> bool:
        record = runtime.checks.get(planned.check)
        return bool(record) and record.get("status") == "completed"

    source.drain(completed, timeout_s, workers=settings.alerts_local_workers)
    record = runtime.checks.get(planned.check) or {}
    return {**CheckReport.of(record).to_dict(), "market": planned.market, "late": planned.late}


def setup(runtime) -> tuple[str, str]:
    """Create the table (if missing), the work queue and the user pool with its app client
    (moto, or an empty account's dev pool); returns the pool and client ids."""
    from devtools.doubles.sqs_poller import create_work_queue

    dynamodb = runtime._aws("client", "dynamodb")
    settings = runtime.settings
    if settings.alerts_table not in dynamodb.list_tables()["TableNames"]:
        create_table(dynamodb, settings.alerts_table)
    if settings.alerts_work_queue_url:
        name = settings.alerts_work_queue_url.rstrip("/").rsplit("/", 1)[-1]
        create_work_queue(runtime._aws("client", "sqs"), runtime._aws("client", "sns"), name)
    return create_pool(cognito_client(runtime))


def cognito_client(runtime):
    from shared.runtime import aws_credentials, botocore_client

    settings = runtime.settings
    return botocore_client(
        "cognito-idp",
        region_name=settings.aws_region,
        endpoint_url=settings.cognito_endpoint_url or None,
        **aws_credentials(settings),
    )


def _password(given: str | None) -> str | None:
    return given or os.environ.get("ALERTS_PASSWORD") or None


def main(argv=None, runtime=None) -> int:
    parser = argparse.ArgumentParser(prog="alerts", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    user = sub.add_parser("user", help="accounts in the user pool (needs the operator's AWS credentials)")
    user_sub = user.add_subparsers(dest="action", required=True)
    create = user_sub.add_parser("create", help="create an account, verified")
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="set it for good (else Cognito emails a temporary one)")
    token = sub.add_parser("token", help="sign in as a user and print the access token")
    token.add_argument("--email", required=True)
    token.add_argument("--password", help="default: ALERTS_PASSWORD")
    sub.add_parser("check", help="run one whole check now (planner and workers) and print its report")
    sub.add_parser("reindex", help="rebuild the symbol registry and every rule's index keys from the rules")
    loop = sub.add_parser("loop", help="run a check every --interval seconds until interrupted")
    loop.add_argument("--interval", type=float, default=None, help="default: ALERTS_LOCAL_INTERVAL_S")
    sub.add_parser("setup", help="create the DynamoDB table and the user pool; prints the pool and client ids")
    args = parser.parse_args(argv)

    if runtime is None:
        from .runtime import AlertsRuntime

        runtime = AlertsRuntime()
    settings = runtime.settings
    try:
        if args.command == "user":
            made = create_user(cognito_client(runtime), settings.cognito_user_pool_id, args.email, args.password)
            print(json.dumps({"email": args.email, **made}))
            return 0
        if args.command == "token":
            password = _password(args.password)
            if not password:
                print("error: give --password or set ALERTS_PASSWORD", file=sys.stderr)
                return 2
            tokens = sign_in(cognito_client(runtime), settings.cognito_client_id, args.email, password)
            print(tokens["AccessToken"])
            return 0
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "setup":
        print(json.dumps(dict(zip(("COGNITO_USER_POOL_ID", "COGNITO_CLIENT_ID"), setup(runtime), strict=True))))
        return 0
    if args.command == "check":
        report = check_once(runtime)
        print(json.dumps(report))
        return 0 if report.get("completed") or not report.get("errors") else 1
    if args.command == "reindex":
        print(json.dumps(runtime.alert_store.reindex()))
        return 0
    interval = args.interval or settings.alerts_local_interval_s
    # The line production writes for each run (shared.observability), so make run shows it;
    # make run's worker processes (devtools.doubles.sqs_poller) write the check's own when it completes.
    configure_logging(settings.log_level)
    try:
        while True:
            report = plan_check(runtime.alert_store, runtime.checks, runtime.quotes, runtime.work_queue, settings)
            record_run("alerts", settings.stage, report.job, report)
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def create_table(dynamodb, name: str) -> None:
    """The table and its indexes, as the CloudFormation template declares them (local use and tests)."""
    keys = ["pk", "sk", *(k for _, *pair in INDEXES for k in pair)]
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in keys],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, hash_key, range_key in INDEXES
        ],
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
