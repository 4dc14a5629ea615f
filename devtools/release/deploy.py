"""Deploy one service to one stage: ``make deploy-<service> STAGE=aws-prod DEPLOY_BUCKET=...``.

Every service goes the same way, which also works for backtest's ~55 MB zip
(pyarrow) that ``chalice deploy``'s direct 50 MB upload cannot take:

1. ``chalice package`` for the stage, checked (dependencies, shared/, size,
   cfn-lint) and given its API Gateway throttling;
2. the zip uploaded to ``DEPLOY_BUCKET`` under its content hash;
3. a CloudFormation change set on stack ``market-<service>-<stage>`` (SAM
   transform), executed, waited for; the API URL printed.

``--dry-run`` does steps 1 and the template rewrite, and prints the plan.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from devtools.release.packaging import ROOT, check, lint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("service", choices=["quote", "backtest", "alerts"])
    parser.add_argument("--stage", default="aws-prod")
    parser.add_argument("--bucket", default="", help="S3 bucket for deployment artifacts (DEPLOY_BUCKET)")
    parser.add_argument("--region", default=None)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if not args.bucket and not args.dry_run:
        parser.error("DEPLOY_BUCKET (--bucket) is required: the artifact bucket CloudFormation deploys from")

    out = ROOT / "build" / args.stage / args.service
    report = check(args.service, out, args.stage)
    print(report.summary())
    if report.problems:
        print("not deploying: fix the problems above", file=sys.stderr)
        return 1
    digest = hashlib.sha256(report.zip_path.read_bytes()).hexdigest()[:20]
    key = f"{args.service}/{args.stage}/{digest}.zip"
    template = json.loads(report.template_path.read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = {"Bucket": args.bucket or "DRY-RUN-BUCKET", "Key": key}
    packaged = out / "packaged.json"
    packaged.write_text(json.dumps(template, indent=2))
    problems = lint(packaged)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    stack = f"market-{args.service}-{args.stage}"
    print(
        f"plan: upload {report.zip_path.name} to s3://{args.bucket or 'DRY-RUN-BUCKET'}/{key}; "
        f"deploy {packaged} as stack {stack}"
    )
    if args.dry_run:
        return 0
    return deploy(stack, packaged, report.zip_path, args.bucket, key, args.region)


def deploy(stack: str, template_path: Path, zip_path: Path, bucket: str, key: str, region: str | None) -> int:
    import boto3

    s3 = boto3.client("s3", region_name=region)
    s3.upload_file(str(zip_path), bucket, key)
    template_key = key.replace(".zip", ".template.json")
    s3.upload_file(str(template_path), bucket, template_key)
    cfn = boto3.client("cloudformation", region_name=region)
    exists = True
    try:
        cfn.describe_stacks(StackName=stack)
    except cfn.exceptions.ClientError:
        exists = False
    name = f"deploy-{key.rsplit('/', 1)[-1].split('.')[0]}"
    url = f"https://{bucket}.s3.amazonaws.com/{template_key}"
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        TemplateURL=url,
        ChangeSetType="UPDATE" if exists else "CREATE",
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    try:
        cfn.get_waiter("change_set_create_complete").wait(StackName=stack, ChangeSetName=name)
    except Exception as exc:  # noqa: BLE001 - "no changes" ends here too; say what CloudFormation said
        reason = cfn.describe_change_set(StackName=stack, ChangeSetName=name).get("StatusReason", str(exc))
        print(f"change set not created: {reason}")
        return 0 if "didn't contain changes" in reason else 1
    cfn.execute_change_set(StackName=stack, ChangeSetName=name)
    waiter = "stack_update_complete" if exists else "stack_create_complete"
    cfn.get_waiter(waiter).wait(StackName=stack, WaiterConfig={"Delay": 10, "MaxAttempts": 180})
    outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        print(f"{output['OutputKey']}: {output['OutputValue']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
