"""What the deployment costs a month, read from the templates it deploys.

    python -m devtools.cost                              # the default traffic, then the design's 25M quotes
    python -m devtools.cost --requests quote=25000000 --edge-share 0.5
    python -m devtools.cost --nat-gateway true           # the stateful stack with its NAT gateway

It synthesizes what ``make package`` and the stacks deploy: the stateful stack
(``infra/stateful.yaml``, its conditions evaluated with the parameters given), the
dashboard stack (``infra/web.yaml``) and the three apps' packaged templates
(``chalice package``, as ``make package`` builds them). Every resource is priced from
``devtools/prices.json`` (us-east-1 list prices, each with its source and date) for a
traffic the arguments describe, or listed as free; a resource type the model does not
know stops it (``UnknownResource``), so nothing a template creates is left out. What a
template does not create is not priced, except what its resources make by running:
the logs the functions write, the SNS messages the check publishes, the secrets the
functions are configured to read. No free tier is counted. The serving layer and the
batch layer (RDS, the lake's storage and writes, the daily update) are totalled apart,
as the design counts them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRICES = json.loads((Path(__file__).parent / "prices.json").read_text())
SERVICES = ("quote", "backtest", "alerts")
HOURS = 730  # a month, as AWS prices by the hour
WEEKDAYS = 21.75
DAYS = 30.42

# Created and kept at no charge of their own.
FREE = {
    "AWS::EC2::VPC",
    "AWS::EC2::VPCCidrBlock",
    "AWS::EC2::Subnet",
    "AWS::EC2::RouteTable",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::EgressOnlyInternetGateway",
    "AWS::RDS::DBSubnetGroup",
    "AWS::ElastiCache::SubnetGroup",
    "AWS::IAM::Role",
    "AWS::Lambda::Permission",
    "AWS::S3::BucketPolicy",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::CachePolicy",
    "AWS::Cognito::UserPoolClient",
}


class UnknownResource(Exception):
    pass


def price(name: str) -> float:
    return PRICES[name]["price"]


@dataclass(frozen=True)
class Traffic:
    """A month of use. Requests are API requests that reach API Gateway or the edge."""

    requests: dict = field(default_factory=lambda: {"quote": 600_000, "backtest": 200_000, "alerts": 200_000})
    edge_share: float = 0.0  # of API requests answered from CloudFront's cache
    page_views: int = 10_000  # dashboard loads (8 static objects each, cached at the edge)
    response_kb: dict = field(default_factory=lambda: {"quote": 1.0, "backtest": 30.0, "alerts": 2.0})
    handler_ms: dict = field(default_factory=lambda: {"quote": 25, "backtest": 60, "alerts": 40})
    authorizer_share: float = 0.3  # of alerts requests that run the authorizer (its answer is cached 60 s)
    authorizer_ms: float = 10
    users: int = 500  # monthly active users (accounts)
    alert_rules: int = 1_000
    check_s: float = 5.0
    firings: int = 3_000  # a month; one message per user per check carries them
    messages: int = 1_500
    email_share: float = 0.5  # of deliveries that go to email (the rest to webhooks)
    tracked_symbols: int = 500
    daily_update_s: float = 60.0
    lake_gb: float = 2.0
    cache_gb: float = 0.05  # quotes, locks and the budget: a few MB; billed from 0.1 GB
    log_kb_per_invocation: float = 0.4
    nat_gb: float = 1.0  # vendor traffic through a NAT gateway, when there is one
    cold_starts: int = 3_000  # container starts: each reads its secrets once

    def total_requests(self) -> int:
        return sum(self.requests.values())


@dataclass
class Line:
    what: str
    monthly: float
    layer: str  # "serving" or "batch"
    resource: str = ""
    note: str = ""


# ----------------------------------------------------------------- templates


def load_yaml_template(path: Path) -> dict:
    from cfnlint.decode import decode

    template, problems = decode(str(path))
    if template is None:
        raise ValueError(f"{path}: {problems}")
    return template


def conditions(template: dict, parameters: dict) -> dict[str, bool]:
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    values.update({k: str(v) for k, v in parameters.items()})

    def evaluate(node):
        if isinstance(node, dict):
            [(fn, arg)] = node.items()
            if fn == "Ref":
                return values[arg]
            if fn == "Fn::Equals":
                return str(evaluate(arg[0])) == str(evaluate(arg[1]))
            if fn == "Fn::Not":
                return not evaluate(arg[0])
            if fn == "Fn::And":
                return all(evaluate(a) for a in arg)
            if fn == "Fn::Or":
                return any(evaluate(a) for a in arg)
            if fn == "Condition":
                return evaluate(template["Conditions"][arg])
            raise ValueError(f"condition function {fn} is not modelled")
        return node

    return {name: bool(evaluate(node)) for name, node in template.get("Conditions", {}).items()}


def created(template: dict, parameters: dict | None = None) -> dict[str, dict]:
    """The resources the template creates with these parameters (conditions applied)."""
    held = conditions(template, parameters or {})
    values = {name: p.get("Default") for name, p in template.get("Parameters", {}).items()}
    values.update(parameters or {})
    return {
        name: {**r, "_parameters": values}
        for name, r in template["Resources"].items()
        if held.get(r.get("Condition"), True)
    }


def app_templates(stage: str = "aws-prod", build: Path | None = None) -> dict[str, dict]:
    """Each app's packaged template: from ``build/<stage>/<app>/sam.json`` (``make package``)
    when it is there and newer than the app's config, else packaged now."""
    from devtools.packaging import check

    out = {}
    for service in SERVICES:
        folder = (build or ROOT / "build" / "cost" / stage) / service
        sam = folder / "sam.json"
        inputs = [
            *(ROOT / service / ".chalice").glob("*.json"),
            ROOT / service / "app.py",
            ROOT / "devtools" / "packaging.py",
        ]
        if not sam.exists() or sam.stat().st_mtime < max(p.stat().st_mtime for p in inputs):
            report = check(service, folder, stage)
            if report.problems:
                raise RuntimeError(f"{service} does not package: {report.problems}")
            sam = report.template_path
        out[service] = json.loads(sam.read_text())
    return out


# ----------------------------------------------------------------- pricing


def schedule_runs(expression: str) -> float:
    """Runs a month of an EventBridge cron(...) or rate(...) expression."""
    if expression.startswith("rate("):
        amount, unit = expression[5:-1].split()
        minutes = float(amount) * {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}[unit]
        return DAYS * 1440 / minutes
    minute, hour, _dom, _month, dow, _year = expression[5:-1].split()

    def count(spec: str, size: int) -> int:
        total = 0
        for part in spec.split(","):
            if part in ("*", "?"):
                total += size
            elif "/" in part:
                start, step = part.split("/")
                total += len(range(0 if start == "*" else int(start), size, int(step)))
            elif "-" in part:
                a, b = part.split("-")
                total += int(b) - int(a) + 1
            else:
                total += 1
        return total

    days = WEEKDAYS if dow.upper() in ("MON-FRI", "2-6") else DAYS
    return count(minute, 60) * count(hour, 24) * days


def function_lines(service: str, name: str, props: dict, traffic: Traffic) -> list[Line]:
    memory_gb = props.get("MemorySize", 128) / 1024
    schedules = [e["Properties"]["Schedule"] for e in props.get("Events", {}).values() if e["Type"] == "Schedule"]
    layer = "serving"
    if schedules:
        runs = sum(schedule_runs(s) for s in schedules)
        seconds = traffic.daily_update_s if name == "DailyUpdate" else traffic.check_s
        layer = "batch" if name == "DailyUpdate" else "serving"
        what = f"{service} {name}: {runs:,.0f} scheduled runs x {seconds:g} s x {memory_gb * 1024:.0f} MB"
    elif name == "BearerToken" or "authorizer" in name.lower() or name.endswith("Token"):
        runs = traffic.requests.get(service, 0) * (1 - traffic.edge_share) * traffic.authorizer_share
        seconds = traffic.authorizer_ms / 1000
        what = f"{service} authorizer: {runs:,.0f} runs x {seconds * 1000:g} ms x {memory_gb * 1024:.0f} MB"
    else:
        runs = traffic.requests.get(service, 0) * (1 - traffic.edge_share)
        seconds = traffic.handler_ms[service] / 1000
        what = f"{service} API function: {runs:,.0f} requests x {seconds * 1000:g} ms x {memory_gb * 1024:.0f} MB"
    compute = runs * seconds * memory_gb * price("lambda_per_gb_second_x86")
    invocations = runs / 1e6 * price("lambda_per_million_requests")
    logs_gb = runs * traffic.log_kb_per_invocation / 1024 / 1024
    lines = [
        Line(what, compute + invocations, layer, f"{service}:{name}", "in the VPC" if props.get("VpcConfig") else ""),
        Line(
            f"{service} {name}: logs ({logs_gb:.2f} GB)",
            logs_gb * (price("cloudwatch_logs_ingest_per_gb") + price("cloudwatch_logs_store_per_gb_month")),
            layer,
            f"{service}:{name}",
        ),
    ]
    if name == "AlertsCheck":
        deliveries = traffic.messages
        emails = deliveries * traffic.email_share
        sns = (
            traffic.messages / 1e6 * price("sns_publish_per_million")
            + emails / 1e5 * price("sns_email_per_100k")
            + (deliveries - emails) / 1e6 * price("sns_https_per_million")
        )
        lines.append(
            Line(
                f"SNS: {traffic.messages:,} messages ({traffic.firings:,} firings)", sns, "serving", f"{service}:{name}"
            )
        )
    return lines


def price_resource(source: str, name: str, resource: dict, traffic: Traffic) -> list[Line] | None:
    """The lines of one resource; None when it costs nothing; UnknownResource when unmodelled."""
    kind = resource["Type"]
    props = resource.get("Properties", {})
    parameters = resource.get("_parameters", {})
    if kind in FREE:
        return None
    if kind == "AWS::EC2::VPCEndpoint":
        if props.get("VpcEndpointType") == "Gateway":
            return None
        raise UnknownResource(f"{source}:{name}: an interface VPC endpoint (hourly per AZ) is not modelled")
    if kind == "AWS::EC2::NatGateway":
        cost = HOURS * price("nat_gateway_per_hour") + traffic.nat_gb * price("nat_gateway_per_gb")
        return [Line("NAT gateway (hours and data processed)", cost, "serving", name)]
    if kind == "AWS::EC2::EIP":
        return [Line("public IPv4 address (the NAT gateway's)", HOURS * price("public_ipv4_per_hour"), "serving", name)]
    if kind == "AWS::ElastiCache::ServerlessCache":
        stored = max(traffic.cache_gb, price("elasticache_serverless_valkey_min_gb"))
        # About 3 ECPUs a quote request (a pipelined MGET and hot mark), a few per alerts check.
        ecpu = traffic.requests.get("quote", 0) * (1 - traffic.edge_share) * 3 + traffic.alert_rules * 30
        cost = stored * HOURS * price("elasticache_serverless_valkey_per_gb_hour") + ecpu / 1e6 * price(
            "elasticache_serverless_valkey_per_million_ecpu"
        )
        if props.get("Engine") != "valkey":
            raise UnknownResource(f"{source}:{name}: a serverless cache of {props.get('Engine')} is not modelled")
        return [
            Line(
                f"ElastiCache Serverless for Valkey ({stored:g} GB billed, {ecpu / 1e6:.1f}M ECPU)",
                cost,
                "serving",
                name,
            )
        ]
    if kind == "AWS::ElastiCache::CacheCluster":
        raise UnknownResource(f"{source}:{name}: a cache node is not modelled (the default is Serverless)")
    if kind == "AWS::RDS::DBInstance":
        klass = _resolve(source, props["DBInstanceClass"], parameters)
        key = f"rds_{klass.replace('db.', 'db_').replace('.', '_')}_postgres_per_hour"
        if key not in PRICES or props.get("MultiAZ"):
            raise UnknownResource(
                f"{source}:{name}: {klass} (multi-AZ {bool(props.get('MultiAZ'))}) is not in the price table"
            )
        storage = float(_resolve(source, props["AllocatedStorage"], parameters))
        lines = [
            Line(f"RDS PostgreSQL {klass}, single-AZ", HOURS * price(key), "batch", name),
            Line(f"RDS gp3 storage, {storage:g} GB", storage * price("rds_gp3_per_gb_month"), "batch", name),
        ]
        if props.get("ManageMasterUserPassword"):
            # The secret RDS makes and rotates, read by the functions that connect.
            lines.append(
                Line(
                    "Secrets Manager: the database password RDS manages",
                    price("secrets_manager_per_secret_month"),
                    "serving",
                    name,
                )
            )
        return lines
    if kind == "AWS::S3::Bucket":
        if name == "Lake":
            puts = traffic.tracked_symbols * WEEKDAYS  # each symbol's object rewritten once a session
            gets = (
                traffic.requests.get("backtest", 0) * (1 - traffic.edge_share) * 0.3
            )  # ranges older than PostgreSQL's
            return [
                Line(
                    f"S3 lake: {traffic.lake_gb:g} GB stored, {puts:,.0f} object writes",
                    traffic.lake_gb * price("s3_standard_per_gb_month") + puts / 1000 * price("s3_put_per_thousand"),
                    "batch",
                    name,
                ),
                Line(
                    f"S3 lake: {gets:,.0f} reads by the backtest API",
                    gets / 1000 * price("s3_get_per_thousand"),
                    "serving",
                    name,
                ),
            ]
        # The dashboard's files (a few hundred KB), read by CloudFront on a cache miss.
        return [
            Line(
                "S3 dashboard bucket",
                0.001 * price("s3_standard_per_gb_month")
                + traffic.page_views / 1000 * 0.05 * price("s3_get_per_thousand"),
                "serving",
                name,
            )
        ]
    if kind == "AWS::DynamoDB::Table":
        if props.get("BillingMode") != "PAY_PER_REQUEST":
            raise UnknownResource(f"{source}:{name}: provisioned DynamoDB capacity is not modelled")
        api = traffic.requests.get("alerts", 0) * (1 - traffic.edge_share)
        checks = schedule_runs("cron(0/15 13-21 ? * MON-FRI *)")
        reads = api * 2 + checks * max(1, traffic.alert_rules / 4)  # a scan reads 4 KB a unit
        writes = api * 0.2 * 2 + traffic.firings * 3
        cost = (
            reads / 1e6 * price("dynamodb_on_demand_per_million_reads")
            + writes / 1e6 * price("dynamodb_on_demand_per_million_writes")
            + 0.01 * price("dynamodb_per_gb_month")
        )
        return [
            Line(f"DynamoDB on-demand ({reads / 1e6:.2f}M reads, {writes / 1e6:.2f}M writes)", cost, "serving", name)
        ]
    if kind == "AWS::Cognito::UserPool":
        if props.get("UserPoolTier", "ESSENTIALS") != "LITE":
            raise UnknownResource(f"{source}:{name}: only the Lite plan is modelled")
        beyond = max(0, traffic.users - price("cognito_lite_free_mau"))
        emails = traffic.users * 0.2  # sign-up codes and resets
        ses = emails / 1000 * price("ses_per_thousand") if parameters.get("SesIdentityArn") else 0.0
        return [
            Line(
                f"Cognito user pool, Lite ({traffic.users:,} monthly active users)",
                beyond * price("cognito_lite_per_mau") + ses,
                "serving",
                name,
            )
        ]
    if kind == "AWS::CloudFront::Distribution":
        api = traffic.total_requests()
        static = traffic.page_views * 8
        gb = sum(traffic.requests[s] * traffic.response_kb[s] for s in traffic.requests) / 1024 / 1024
        gb += traffic.page_views * 0.25 / 1024  # 250 KB a cold page load
        cost = (api + static) / 1e4 * price("cloudfront_https_per_10k") + gb * price("cloudfront_transfer_per_gb")
        return [Line(f"CloudFront: {(api + static) / 1e6:.2f}M requests, {gb:.1f} GB out", cost, "serving", name)]
    if kind == "AWS::Serverless::Api":
        endpoint = props.get("EndpointConfiguration")
        endpoint = endpoint.get("Type") if isinstance(endpoint, dict) else endpoint
        service = source
        calls = traffic.requests.get(service, 0) * (1 - traffic.edge_share)
        return [
            Line(
                f"{service} API Gateway REST ({endpoint}): {calls:,.0f} calls",
                calls / 1e6 * price("api_gateway_rest_per_million"),
                "serving",
                f"{service}:{name}",
            )
        ]
    if kind == "AWS::Serverless::Function":
        return function_lines(source, name, props, traffic)
    raise UnknownResource(f"{source}:{name}: the cost model does not know {kind}")


def _resolve(source, node, parameters):
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in parameters:
        return parameters[node["Ref"]]
    if isinstance(node, dict):
        raise UnknownResource(f"{source}: a size given as {node} cannot be priced")
    return node


def secret_lines(apps: dict[str, dict]) -> list[Line]:
    """The secrets the functions are configured to read (made by hand, README), one each."""
    ids = set()
    for template in apps.values():
        for resource in template["Resources"].values():
            env = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
            ids.update(v for k, v in env.items() if k.endswith("_SECRET_ID"))
    return [
        Line(
            f"Secrets Manager: {len(ids)} secrets the functions read ({', '.join(sorted(ids))})",
            len(ids) * price("secrets_manager_per_secret_month"),
            "serving",
            "config",
        )
    ]


@dataclass
class Bill:
    lines: list[Line]
    free: list[str]

    def total(self, layer: str | None = None) -> float:
        return sum(x.monthly for x in self.lines if layer is None or x.layer == layer)


def bill(traffic: Traffic, templates: dict[str, dict], parameters: dict | None = None) -> Bill:
    """``templates``: {"stateful": ..., "web": ..., "quote": ..., "backtest": ..., "alerts": ...}."""
    lines, free = [], []
    for source, template in templates.items():
        for name, resource in created(template, parameters if source == "stateful" else None).items():
            priced = price_resource(source, name, resource, traffic)
            if priced is None:
                free.append(f"{source}:{name} ({resource['Type']})")
            else:
                lines.extend(priced)
    apps = {s: t for s, t in templates.items() if s in SERVICES}
    lines.extend(secret_lines(apps))
    calls = traffic.cold_starts * 2
    lines.append(
        Line(
            f"Secrets Manager: {calls:,} reads (at cold starts)",
            calls / 1e4 * price("secrets_manager_per_10k_calls"),
            "serving",
            "config",
        )
    )
    return Bill(lines, free)


def all_templates(stage: str = "aws-prod", build: Path | None = None) -> dict[str, dict]:
    return {
        "stateful": load_yaml_template(ROOT / "infra" / "stateful.yaml"),
        "web": load_yaml_template(ROOT / "infra" / "web.yaml"),
        **app_templates(stage, build),
    }


def per_million(traffic: Traffic, templates, parameters=None) -> float:
    """What one more million API requests (in today's mix) adds to the serving layer."""
    base = bill(traffic, templates, parameters).total("serving")
    total = traffic.total_requests() or 1
    more = {s: n + 1e6 * n / total for s, n in traffic.requests.items()}
    return bill(replace(traffic, requests=more), templates, parameters).total("serving") - base


def render(title: str, result: Bill, traffic: Traffic, extra: float) -> str:
    out = [f"### {title}", "", "| layer | item | $/month |", "|---|---|---:|"]
    for layer in ("serving", "batch"):
        for x in sorted((x for x in result.lines if x.layer == layer), key=lambda x: -x.monthly):
            out.append(f"| {layer} | {x.what}{' (' + x.note + ')' if x.note else ''} | {x.monthly:.2f} |")
    out += [
        f"| | **serving layer** | **{result.total('serving'):.2f}** |",
        f"| | batch layer (RDS, the lake, the daily update) | {result.total('batch'):.2f} |",
        f"| | everything | {result.total():.2f} |",
        "",
        f"Traffic: {', '.join(f'{s} {n:,}' for s, n in traffic.requests.items())} API requests a month "
        f"({traffic.total_requests():,}), {traffic.edge_share:.0%} answered at the edge, {traffic.users:,} users, "
        f"{traffic.alert_rules:,} alert rules, {traffic.tracked_symbols:,} tracked symbols, a {traffic.lake_gb:g} GB lake. "
        f"Each further million API requests: ${extra:.2f}.",
        "",
    ]
    return "\n".join(out)


def parse_requests(text: str, base: dict) -> dict:
    out = dict(base)
    for part in text.split(","):
        service, _, n = part.partition("=")
        if service not in SERVICES:
            raise SystemExit(f"--requests: unknown service {service!r}")
        out[service] = int(float(n))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cost", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stage", default="aws-prod")
    parser.add_argument("--requests", help="e.g. quote=600000,backtest=200000,alerts=200000")
    parser.add_argument("--edge-share", type=float)
    parser.add_argument("--users", type=int)
    parser.add_argument("--rules", type=int)
    parser.add_argument("--symbols", type=int)
    parser.add_argument("--lake-gb", type=float)
    parser.add_argument("--nat-gateway", choices=["true", "false"])
    args = parser.parse_args(argv)
    templates = all_templates(args.stage)
    parameters = {"NatGateway": args.nat_gateway} if args.nat_gateway else {}
    traffic = Traffic()
    custom = {}
    if args.requests:
        custom["requests"] = parse_requests(args.requests, traffic.requests)
    for arg, name in (
        ("edge_share", "edge_share"),
        ("users", "users"),
        ("rules", "alert_rules"),
        ("symbols", "tracked_symbols"),
        ("lake_gb", "lake_gb"),
    ):
        if getattr(args, arg) is not None:
            custom[name] = getattr(args, arg)
    if custom or parameters:
        traffic = replace(traffic, **custom)
        result = bill(traffic, templates, parameters)
        print(render("The bill for this traffic", result, traffic, per_million(traffic, templates, parameters)))
        return 0
    result = bill(traffic, templates)
    print(
        render("Default deployment, 1 million API requests a month", result, traffic, per_million(traffic, templates))
    )
    design = replace(traffic, requests={**traffic.requests, "quote": 25_000_000})
    print(
        render(
            "The design's assumption: 25 million quote requests a month",
            bill(design, templates),
            design,
            per_million(design, templates),
        )
    )
    edge = replace(design, edge_share=0.5)
    print(
        render(
            "25 million quote requests, half answered from CloudFront's cache",
            bill(edge, templates),
            edge,
            per_million(edge, templates),
        )
    )
    nat = bill(traffic, templates, {"NatGateway": "true"})
    print(
        f"With NatGateway=true (a vendor without IPv6): serving layer ${nat.total('serving'):.2f} a month at 1 million requests."
    )
    print(f"\n{len(result.free)} resources cost nothing of their own: {', '.join(sorted(result.free))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
