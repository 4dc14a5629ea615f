"""Publish the dashboard for one stage: ``make deploy-web STAGE=aws-prod``.

1. Reads each service stack's ``EndpointURL`` (``market-<service>-<stage>``, as
   ``make deploy-<service>`` created them).
2. Deploys ``infra/web.yaml`` as ``market-web-<stage>``: a private bucket behind
   CloudFront (origin access control) that also routes ``/api/quote*``,
   ``/api/backtest*`` and ``/api/alerts*`` to the three APIs.
3. Writes the page's ``config.json`` with that stage's service URLs: the
   distribution's own URL for each (one origin, no CORS, history cached at the
   edge), or with ``--direct`` the APIs' own endpoints; and the user pool the
   page signs in with, from the stateful stack's outputs (``market-data-<stage>``).
4. Uploads the site (``devtools.local.web_site.site_files``) with its cache headers and
   invalidates the distribution.

``--dry-run --endpoints endpoints.json --stateful-outputs outputs.json`` does
steps 1 and 3 offline and prints the plan; ``build/web/<stage>/`` then holds
exactly what would be uploaded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from devtools.local.web_site import ROOT, config_for, site_files

SERVICES = ("quote", "backtest", "alerts")
TEMPLATE = ROOT / "infra" / "web.yaml"
# The page and its config must be fetched fresh after a deploy; the rest may be kept briefly.
NO_CACHE = {"index.html", "config.json"}


def cache_control(name: str) -> str:
    return "no-cache" if name in NO_CACHE else "public, max-age=300"


def content_type(name: str) -> str:
    from devtools.local.web_site import CONTENT_TYPES

    return CONTENT_TYPES[Path(name).suffix]


def endpoint_origin(endpoint: str) -> tuple[str, str]:
    """``https://abc.execute-api.us-east-1.amazonaws.com/api/`` -> (host, "/api")."""
    parts = urlparse(endpoint)
    return parts.hostname, "/" + parts.path.strip("/") if parts.path.strip("/") else ""


def service_endpoints(stage: str, region: str | None) -> dict[str, str]:
    import boto3

    cfn = boto3.client("cloudformation", region_name=region)
    out = {}
    for service in SERVICES:
        stack = cfn.describe_stacks(StackName=f"market-{service}-{stage}")["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        out[service] = outputs["EndpointURL"]
    return out


def auth_config(outputs: dict[str, str]) -> dict[str, str]:
    """The page's ``auth``: the stateful stack's user pool, at the region's own endpoint."""
    region = outputs["UserPoolId"].split("_", 1)[0]
    return {
        "region": region,
        "userPoolId": outputs["UserPoolId"],
        "clientId": outputs["UserPoolClientId"],
        "endpoint": f"https://cognito-idp.{region}.amazonaws.com/",
    }


def stateful_outputs(stage: str, region: str | None) -> dict[str, str]:
    import boto3

    stack = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=f"market-data-{stage}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0].get("Outputs", [])}


def build(stage: str, bases: dict[str, str], auth: dict[str, str]) -> Path:
    """The files to upload, config.json included, under build/web/<stage>/."""
    out = ROOT / "build" / "web" / stage
    shutil.rmtree(out, ignore_errors=True)
    for name, path in site_files().items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (out / "config.json").write_bytes(config_for(bases, auth))
    return out


def deploy_stack(stage: str, endpoints: dict[str, str], region: str | None) -> dict[str, str]:
    hosts = {service: endpoint_origin(url) for service, url in endpoints.items()}
    stage_paths = {path for _, path in hosts.values()}
    if len(stage_paths) != 1:
        raise SystemExit(f"the three APIs use different stage paths: {stage_paths}")
    command = [
        "aws",
        "cloudformation",
        "deploy",
        "--stack-name",
        f"market-web-{stage}",
        "--template-file",
        str(TEMPLATE),
        "--no-fail-on-empty-changeset",
        "--parameter-overrides",
        f"Stage={stage}",
        f"QuoteApiDomain={hosts['quote'][0]}",
        f"BacktestApiDomain={hosts['backtest'][0]}",
        f"AlertsApiDomain={hosts['alerts'][0]}",
        f"ApiStagePath={stage_paths.pop()}",
    ]
    if region:
        command += ["--region", region]
    subprocess.run(command, check=True)
    import boto3

    stack = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=f"market-web-{stage}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0].get("Outputs", [])}


def upload(folder: Path, bucket: str, distribution_id: str, region: str | None) -> None:
    import boto3

    s3 = boto3.client("s3", region_name=region)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        s3.upload_file(
            str(path),
            bucket,
            name,
            ExtraArgs={"ContentType": content_type(name), "CacheControl": cache_control(name)},
        )
        print(f"uploaded {name}")
    boto3.client("cloudfront").create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time())},
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stage", default="aws-prod")
    parser.add_argument("--region", default=None)
    parser.add_argument("--direct", action="store_true", help="the page calls the APIs' own URLs, not CloudFront's")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--endpoints", help="a JSON file of service -> EndpointURL instead of reading the stacks")
    parser.add_argument(
        "--stateful-outputs", help="a JSON file of the stateful stack's outputs (OutputKey -> OutputValue)"
    )
    args = parser.parse_args(argv)

    endpoints = (
        json.loads(Path(args.endpoints).read_text()) if args.endpoints else service_endpoints(args.stage, args.region)
    )
    missing = [s for s in SERVICES if s not in endpoints]
    if missing:
        parser.error(f"no endpoint for {', '.join(missing)}: deploy them first (make deploy-<service>)")
    # An EndpointURL ends in its stage ("/api/"), which the page's "/api/<service>" paths follow.
    direct = {service: url.rstrip("/") for service, url in endpoints.items()}
    outputs = (
        json.loads(Path(args.stateful_outputs).read_text())
        if args.stateful_outputs
        else stateful_outputs(args.stage, args.region)
    )
    auth = auth_config(outputs)
    if args.dry_run:
        bases = direct if args.direct else {s: "https://DISTRIBUTION.cloudfront.net" for s in SERVICES}
        folder = build(args.stage, bases, auth)
        print(f"plan: deploy {TEMPLATE.relative_to(ROOT)} as stack market-web-{args.stage} with origins:")
        for service in SERVICES:
            host, path = endpoint_origin(endpoints[service])
            print(f"  /api/{service}* -> https://{host}{path}")
        print(
            f"plan: upload {folder.relative_to(ROOT)}/ (config.json: {json.loads((folder / 'config.json').read_text())})"
        )
        return 0
    site = deploy_stack(args.stage, endpoints, args.region)
    bases = direct if args.direct else {s: site["SiteUrl"] for s in SERVICES}
    folder = build(args.stage, bases, auth)
    upload(folder, site["SiteBucket"], site["DistributionId"], args.region)
    print(f"dashboard: {site['SiteUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
