"""Alerts from the command line: tokens, one check, a local schedule, local setup.

python -m alerts.chalicelib.cli token --user alice [--days 30]
python -m alerts.chalicelib.cli check
python -m alerts.chalicelib.cli loop [--interval 60]      # what make run does: chalice local never fires schedules
python -m alerts.chalicelib.cli setup                     # create the table and topic (moto, or an empty account)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from . import auth
from .check import run_check
from .store import ENABLED_INDEX


def check_once(runtime) -> dict:
    report = run_check(runtime.alert_store, runtime.quotes, runtime.database, runtime.publisher, runtime.settings)
    out = report.to_dict()
    out["fired_rules"] = report.fired_rules
    return out


def setup(runtime) -> str:
    """Create the table (if missing) and the topic; print the topic ARN."""
    dynamodb = runtime._aws("client", "dynamodb")
    name = runtime.settings.alerts_table
    if name not in dynamodb.list_tables()["TableNames"]:
        create_table(dynamodb, name)
    topic = runtime._aws("client", "sns").create_topic(Name=f"{name}-notifications")["TopicArn"]
    return topic


def main(argv=None, runtime=None) -> int:
    parser = argparse.ArgumentParser(prog="alerts", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="mint a bearer token for a user")
    token.add_argument("--user", required=True)
    token.add_argument("--days", type=float, default=30)
    sub.add_parser("check", help="run one check now and print its report")
    loop = sub.add_parser("loop", help="run a check every --interval seconds until interrupted")
    loop.add_argument("--interval", type=float, default=None, help="default: ALERTS_LOCAL_INTERVAL_S")
    sub.add_parser("setup", help="create the DynamoDB table and the SNS topic; prints the topic ARN")
    args = parser.parse_args(argv)

    if runtime is None:
        from .runtime import AlertsRuntime

        runtime = AlertsRuntime()
    settings = runtime.settings
    if args.command == "token":
        try:
            print(auth.mint(settings.auth_secret, args.user, settings.auth_issuer, args.days * 86400))
        except auth.AuthError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "setup":
        print(setup(runtime))
        return 0
    if args.command == "check":
        print(json.dumps(check_once(runtime)))
        return 0
    interval = args.interval or settings.alerts_local_interval_s
    try:
        while True:
            report = check_once(runtime)
            stamp = time.strftime("%H:%M:%S")
            print(f"[alerts {stamp}] {json.dumps({k: v for k, v in report.items() if k != 'fired_rules'})}", flush=True)
            for fired in report["fired_rules"]:
                print(f"[alerts {stamp}]   fired: {json.dumps(fired)}", flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def create_table(dynamodb, name: str) -> None:
    """The table and its index, as the CloudFormation template declares them (local use and tests)."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": ENABLED_INDEX,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
