"""Write the stateful stack's outputs into each service's stage configuration.

    python -m devtools.release.stage_config --stage aws-prod             # reads stack market-data-aws-prod
    python -m devtools.release.stage_config --stage aws-prod --outputs o.json  # or saved describe-stacks outputs

As Chalice's media-query sample does: the stateful stack is created once, and its
outputs (endpoints, names, subnets) become each stage's environment and VPC
settings in ``<service>/.chalice/config.json``. No secret is written: only the
names of the SSM parameters and the ARN of the database secret.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# service -> environment variable -> stack output
ENVIRONMENT = {
    "quote": {"REDIS_URL": "RedisUrl"},
    "backtest": {
        "DATABASE_URL": "DatabaseUrl",
        "DATABASE_SECRET_ARN": "DatabaseSecretArn",
        "LAKE_URI": "LakeUri",
        "REDIS_URL": "RedisUrl",  # the daily update spends the shared Polygon budget
    },
    "alerts": {
        "REDIS_URL": "RedisUrl",
        "DATABASE_URL": "DatabaseUrl",
        "DATABASE_SECRET_ARN": "DatabaseSecretArn",
        "ALERTS_TABLE": "AlertsTable",
        "ALERTS_TOPIC_PREFIX": "AlertsTopicPrefix",
        "ALERTS_WORK_TOPIC_ARN": "AlertsWorkTopicArn",
        "LAKE_URI": "LakeUri",  # whether a rule's symbol has history (a HEAD on its object)
        "COGNITO_USER_POOL_ID": "UserPoolId",
        "COGNITO_CLIENT_ID": "UserPoolClientId",
    },
}
# Only the functions that reach Redis or PostgreSQL run in the VPC; the alerts API and
# its authorizer reach DynamoDB, SNS, Secrets Manager and Cognito's key set, all public.
IN_VPC = {
    "quote": ["api_handler"],
    "backtest": ["api_handler", "daily-update"],
    "alerts": ["alerts-check", "alerts-worker"],
}
SECRET_PARAMETERS = {
    "quote": {},
    "backtest": {"CURSOR_SECRET_SECRET_ID": "cursor-secret"},
    "alerts": {},
}
# The vendor's key is read by the vendor relay alone (a function of the quote app, outside
# the VPC); the functions that call the vendor invoke it by name.
RELAY = "vendor-relay"
RELAY_SECRETS = {"POLYGON_API_KEY_SECRET_ID": "polygon-api-key"}


def relay_function(stage: str) -> str:
    """The relay's name: the quote app's function, as make package names it."""
    return f"market-quote-{stage}-{RELAY}"


LOCAL_STAGE = "dev"


def apply(outputs: dict[str, str], stage: str, root: Path = ROOT) -> list[Path]:
    if stage == LOCAL_STAGE:
        raise SystemExit(
            f"'{LOCAL_STAGE}' is the local stage (plain chalice local); AWS stages are aws-dev, aws-prod, ..."
        )
    written = []
    for service, variables in ENVIRONMENT.items():
        path = root / service / ".chalice" / "config.json"
        config = json.loads(path.read_text())
        settings = config["stages"].setdefault(stage, {})
        env = settings.setdefault("environment_variables", {})
        env["STAGE"] = stage
        env.update({name: outputs[key] for name, key in variables.items()})
        env.update({name: f"{outputs['SecretPrefix']}{leaf}" for name, leaf in SECRET_PARAMETERS[service].items()})
        env.pop("POLYGON_API_KEY_SECRET_ID", None)
        env["POLYGON_RELAY_FUNCTION"] = relay_function(stage)
        if "REDIS_URL" in env:
            env["REDIS_CLUSTER"] = "1"  # ElastiCache Serverless is always cluster mode (and TLS: rediss://)
        # In the VPC without a NAT gateway: SNS, Secrets Manager and Lambda (the relay) over
        # their dual-stack (IPv6) endpoints.
        env["AWS_DUALSTACK_SERVICES"] = "sns,secretsmanager,lambda"
        settings["xray"] = True
        settings["api_gateway_endpoint_type"] = "REGIONAL"
        settings.pop("subnet_ids", None)
        settings.pop("security_group_ids", None)
        functions = settings.setdefault("lambda_functions", {})
        for function in IN_VPC[service]:
            functions.setdefault(function, {})["subnet_ids"] = outputs["SubnetIds"].split(",")
            functions[function]["security_group_ids"] = [outputs["LambdaSecurityGroupId"]]
        if service == "quote":
            relay = functions.setdefault(RELAY, {})
            relay["environment_variables"] = {
                name: f"{outputs['SecretPrefix']}{leaf}" for name, leaf in RELAY_SECRETS.items()
            }
        settings.setdefault("autogen_policy", False)
        settings.setdefault("iam_policy_file", f"policy-{stage}.json")
        path.write_text(json.dumps(config, indent=2) + "\n")
        written.append(path)
    return written


def stack_outputs(stack: str) -> dict[str, str]:
    import boto3

    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stage", default="aws-prod")
    parser.add_argument("--stack", default=None, help="default: market-data-<stage>")
    parser.add_argument("--outputs", default=None, help="a JSON file of OutputKey -> OutputValue instead of AWS")
    args = parser.parse_args(argv)
    outputs = (
        json.loads(Path(args.outputs).read_text())
        if args.outputs
        else stack_outputs(args.stack or f"market-data-{args.stage}")
    )
    for path in apply(outputs, args.stage):
        print(f"updated {path.relative_to(ROOT)} (stage {args.stage})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
