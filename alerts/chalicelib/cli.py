"""Alerts from the command line: accounts, one check, a local schedule, local setup.

python -m alerts.chalicelib.cli user create --email ann@example.com [--password ...]  # an account (operator)
python -m alerts.chalicelib.cli token --email ann@example.com --password ...           # its access token
python -m alerts.chalicelib.cli check
python -m alerts.chalicelib.cli loop [--interval 60]      # what make run does: chalice local never fires schedules
python -m alerts.chalicelib.cli setup                     # create the table and the user pool (moto, local)

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
from .check import run_check
from .store import ENABLED_INDEX


def check_once(runtime) -> dict:
    report = run_check(runtime.alert_store, runtime.quotes, runtime.database, runtime.publisher, runtime.settings)
    out = report.to_dict()
    out["fired_rules"] = report.fired_rules
    return out


def setup(runtime) -> tuple[str, str]:
    """Create the table (if missing) and the user pool with its app client (moto, or an
    empty account's dev pool); returns the pool and client ids."""
    dynamodb = runtime._aws("client", "dynamodb")
    name = runtime.settings.alerts_table
    if name not in dynamodb.list_tables()["TableNames"]:
        create_table(dynamodb, name)
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
    sub.add_parser("check", help="run one check now and print its report")
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
        print(json.dumps(check_once(runtime)))
        return 0
    interval = args.interval or settings.alerts_local_interval_s
    # The line production writes for each run (shared.observability), so make run shows it.
    configure_logging(settings.log_level)
    try:
        while True:
            report = run_check(runtime.alert_store, runtime.quotes, runtime.database, runtime.publisher, settings)
            record_run("alerts", settings.stage, report.job, report)
            for fired in report.fired_rules:
                print(f"[alerts {time.strftime('%H:%M:%S')}]   fired: {json.dumps(fired)}", flush=True)
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
