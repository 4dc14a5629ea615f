"""What the deployment costs a month, read from the templates it deploys.

    python -m devtools.release.cost                              # the default traffic, then the design's 25M quotes
    python -m devtools.release.cost --requests quote=25000000 --edge-share 0.5
    python -m devtools.release.cost --nat-gateway true           # the stateful stack with its NAT gateway
    python -m devtools.release.cost --rules 1000000              # alerts at a million rules
    python -m devtools.release.cost --no-free-tier               # as if the always-free allowances were spent elsewhere

It synthesizes what ``make package`` and the stacks deploy: the stateful stack
(``infra/stateful.yaml``, its conditions evaluated with the parameters given), the
dashboard stack (``infra/web.yaml``) and the three apps' packaged templates
(``chalice package``, as ``make package`` builds them). Every resource is priced from
``devtools/release/prices.json`` (us-east-1 list prices, each with its source and date) for a
traffic the arguments describe, or listed as free; a resource type the model does not
know stops it (``UnknownResource``), so nothing a template creates is left out. What a
template does not create is not priced, except what its resources make by running: the
logs the functions write, the metrics they publish (``shared.observability.METRICS``),
their traces, the SNS messages the check publishes, the secrets the functions read.

AWS's always-free allowances (Lambda's million requests, CloudWatch's ten metrics, ten
alarms and three dashboards, X-Ray's 100,000 traces, CloudFront's ten million requests,
...) are every account's, whatever its age: they are taken off as credits of their own,
assuming a stage has an account to itself (AWS's multi-account layout). The 12-month free
tier is not counted (accounts made since 2025-07-15 do not get it). The serving layer
and the batch layer (RDS, the lake's storage and writes, the daily update) are totalled
apart, as the design counts them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRICES = json.loads((Path(__file__).parent / "prices.json").read_text())
SERVICES = ("quote", "backtest", "alerts")
HOURS = 730  # a month, as AWS prices by the hour
WEEKDAYS = 21.75
DAYS = 30.42
# The alerts check evaluates during the market's hours (its runs outside them only say they are alive).
MARKET_HOURS_SCHEDULE = "cron(0/15 13-21 ? * MON-FRI *)"

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
    # The operator's topic and email: a few alarm emails a month.
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
    "AWS::XRay::SamplingRule",
    # The groups themselves: their logs are priced with the functions that write them.
    "AWS::Logs::LogGroup",
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
    check_s: float = 2.0  # the planner during market hours (registry, quotes, shards handed out)
    idle_check_s: float = 0.2  # a check outside them: it says it is alive
    # A rule fires on ~3 of a month's sessions; one message per user per check carries ~2.
    firings_per_rule: float = 3.0
    firings_per_message: float = 2.0
    # The fan-out (alerts/chalicelib/fanout.py, shard.py, delivery.py): a worker's time a
    # rule (CPU and its share of DynamoDB requests, per make bench's model) and a firing
    # (claimed, taken, recorded, published); a rule item's size in the index.
    shard_rules: int = 5_000
    delivery_buckets: int = 16
    rule_ms: float = 1.0
    firing_ms: float = 5.0
    rule_kb: float = 0.35
    email_share: float = 0.5  # of deliveries that go to email (the rest to webhooks)
    tracked_symbols: int = 500
    daily_update_s: float = 60.0  # an evening with a session to fill
    idle_update_s: float = 1.0  # a weekend or holiday evening
    vendor_calls: int = 30_000  # a month, each one relayed (quote misses, checks, daily updates)
    relay_ms: float = 150  # a relayed call: the vendor's answer, most of it
    lake_gb: float = 2.0
    cache_gb: float = 0.05  # quotes, locks and the budget: a few MB; billed from 0.1 GB
    log_kb_per_request: float = 0.75  # the request's JSON line with its metrics (measured: 0.5-0.9 KB)
    log_kb_per_run: float = 1.5  # a scheduled run's report with its metrics
    trace_share: float = 0.02  # of API requests traced (the stateful stack's sampling rule)
    nat_gb: float = 1.0  # vendor traffic through a NAT gateway, when there is one
    cold_starts: int = 3_000  # container starts: each reads its secrets once
    free_tier: bool = True  # the always-free allowances (see the module's docstring)

    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def firings(self) -> float:
        return self.alert_rules * self.firings_per_rule

    @property
    def messages(self) -> float:
        return self.firings / self.firings_per_message

    def checks(self) -> float:
        """Checks a month that evaluate (market hours)."""
        return schedule_runs(MARKET_HOURS_SCHEDULE)

    def work_units(self) -> float:
        """Shards and deliveries a month: each one SQS message and one worker invocation."""
        return self.checks() * (math.ceil(self.alert_rules / self.shard_rules) + self.delivery_buckets)

    def api_calls(self, service: str) -> float:
        return self.requests.get(service, 0) * (1 - self.edge_share)


@dataclass
class Line:
    what: str
    monthly: float
    layer: str  # "serving" or "batch"
    resource: str = ""
    note: str = ""
    # What of it an always-free allowance may cover: allowance name -> amount used.
    usage: dict = field(default_factory=dict)


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
    from devtools.release.packaging import check

    out = {}
    for service in SERVICES:
        folder = (build or ROOT / "build" / "cost" / stage) / service
        sam = folder / "sam.json"
        inputs = [
            *(ROOT / service / ".chalice").glob("*.json"),
            ROOT / service / "app.py",
            ROOT / "devtools" / "release" / "packaging.py",
            ROOT / "devtools" / "release" / "template_operations.py",
        ]
        if not sam.exists() or sam.stat().st_mtime < max(p.stat().st_mtime for p in inputs):
            report = check(service, folder, stage)
            if report.problems:
                raise RuntimeError(f"{service} does not package: {report.problems}")
            sam = report.template_path
        out[service] = json.loads(sam.read_text())
    return out


# ----------------------------------------------------------------- how often and how long


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


@dataclass
class Work:
    """A function's month: invocations, seconds each (averaged), what it is, its layer."""

    runs: float
    seconds: float
    what: str
    layer: str = "serving"
    log_kb: float = 0.0


def scheduled_work(service: str, name: str, props: dict, traffic: Traffic) -> Work:
    memory = props.get("MemorySize", 128)
    expressions = [e["Properties"]["Schedule"] for e in props.get("Events", {}).values() if e["Type"] == "Schedule"]
    runs = sum(schedule_runs(s) for s in expressions)
    if name == "DailyUpdate":
        busy, busy_s, idle_s, layer = min(runs, WEEKDAYS), traffic.daily_update_s, traffic.idle_update_s, "batch"
    else:
        busy, busy_s, idle_s, layer = (
            min(runs, schedule_runs(MARKET_HOURS_SCHEDULE)),
            traffic.check_s,
            traffic.idle_check_s,
            "serving",
        )
    seconds = (busy * busy_s + (runs - busy) * idle_s) / runs
    what = f"{service} {name}: {runs:,.0f} scheduled runs ({busy:,.0f} at {busy_s:g} s, the rest {idle_s:g} s) x {memory} MB"
    return Work(runs, seconds, what, layer, traffic.log_kb_per_run)  # fmt: skip


def function_work(service: str, name: str, props: dict, traffic: Traffic) -> Work:
    memory = props.get("MemorySize", 128)
    if any(e["Type"] == "Schedule" for e in props.get("Events", {}).values()):
        return scheduled_work(service, name, props, traffic)
    if name == "AlertsWorker":
        runs = traffic.work_units()
        busy = (
            traffic.checks() * traffic.alert_rules * traffic.rule_ms / 1000 + traffic.firings * traffic.firing_ms / 1000
        )
        what = (
            f"alerts workers: {runs:,.0f} shards and deliveries x {busy / runs * 1000:,.0f} ms x {memory} MB "
            f"({traffic.alert_rules:,} rules x {traffic.rule_ms:g} ms each check, {traffic.firings:,.0f} firings x "
            f"{traffic.firing_ms:g} ms)"
        )
        return Work(runs, busy / runs, what, log_kb=0.5)
    if name == "VendorRelay":
        runs, seconds = traffic.vendor_calls, traffic.relay_ms / 1000
        return Work(runs, seconds, f"vendor relay: {runs:,} calls x {traffic.relay_ms:g} ms x {memory} MB", log_kb=0.3)
    if name == "BearerToken" or name.endswith("Token"):
        runs = traffic.api_calls(service) * traffic.authorizer_share
        seconds = traffic.authorizer_ms / 1000
        return Work(
            runs, seconds, f"{service} authorizer: {runs:,.0f} runs x {seconds * 1000:g} ms x {memory} MB", log_kb=0.2
        )
    runs, seconds = traffic.api_calls(service), traffic.handler_ms[service] / 1000
    what = f"{service} API function: {runs:,.0f} requests x {seconds * 1000:g} ms x {memory} MB"
    return Work(runs, seconds, what, log_kb=traffic.log_kb_per_request)  # fmt: skip


def function_lines(service: str, name: str, props: dict, traffic: Traffic) -> list[Line]:
    work = function_work(service, name, props, traffic)
    gb_seconds = work.runs * work.seconds * props.get("MemorySize", 128) / 1024
    compute = gb_seconds * price("lambda_per_gb_second_x86") + work.runs / 1e6 * price("lambda_per_million_requests")
    logs_gb = work.runs * work.log_kb / 1024 / 1024
    logs = logs_gb * (price("cloudwatch_logs_ingest_per_gb") + price("cloudwatch_logs_store_per_gb_month"))
    where = f"{service}:{name}"
    usage = {"lambda_requests": work.runs, "lambda_gb_seconds": gb_seconds}
    lines = [
        Line(work.what, compute, work.layer, where, "in the VPC" if props.get("VpcConfig") else "", usage),
        Line(f"{service} {name}: logs ({logs_gb:.2f} GB)", logs, work.layer, where, usage={"logs_gb": logs_gb}),
    ]
    if name == "AlertsWorker":
        lines.append(sns_line(traffic, where))
    return lines


def sns_line(traffic: Traffic, where: str) -> Line:
    """The users' messages, and the check's units of work through the work topic."""
    emails = traffic.messages * traffic.email_share
    publishes = traffic.messages + traffic.work_units()
    cost = (
        publishes / 1e6 * price("sns_publish_per_million")
        + emails / 1e5 * price("sns_email_per_100k")
        + (traffic.messages - emails) / 1e6 * price("sns_https_per_million")
    )
    what = (
        f"SNS: {traffic.messages:,.0f} messages to users ({traffic.firings:,.0f} firings) and "
        f"{traffic.work_units():,.0f} units of work"
    )
    return Line(what, cost, "serving", where, usage={"sns_publishes": publishes})


# ----------------------------------------------------------------- one resource at a time

Pricer = Callable[[str, str, dict, dict, dict, Traffic], "list[Line] | None"]


def _vpc_endpoint(source, name, props, parameters, resource, traffic):
    if props.get("VpcEndpointType") == "Gateway":
        return None
    raise UnknownResource(f"{source}:{name}: an interface VPC endpoint (hourly per AZ) is not modelled")


def _nat_gateway(source, name, props, parameters, resource, traffic):
    cost = HOURS * price("nat_gateway_per_hour") + traffic.nat_gb * price("nat_gateway_per_gb")
    return [Line("NAT gateway (hours and data processed)", cost, "serving", name)]


def _eip(source, name, props, parameters, resource, traffic):
    return [Line("public IPv4 address (the NAT gateway's)", HOURS * price("public_ipv4_per_hour"), "serving", name)]


def _serverless_cache(source, name, props, parameters, resource, traffic):
    if props.get("Engine") != "valkey":
        raise UnknownResource(f"{source}:{name}: a serverless cache of {props.get('Engine')} is not modelled")
    stored = max(traffic.cache_gb, price("elasticache_serverless_valkey_min_gb"))
    # About 3 ECPUs a quote request (a pipelined MGET and hot mark), a few per alerts check.
    ecpu = traffic.api_calls("quote") * 3 + traffic.alert_rules * 30
    cost = stored * HOURS * price("elasticache_serverless_valkey_per_gb_hour") + ecpu / 1e6 * price(
        "elasticache_serverless_valkey_per_million_ecpu"
    )
    return [Line(f"ElastiCache Serverless for Valkey ({stored:g} GB billed, {ecpu / 1e6:.1f}M ECPU)", cost, "serving", name)]  # fmt: skip


def _cache_node(source, name, props, parameters, resource, traffic):
    raise UnknownResource(f"{source}:{name}: a cache node is not modelled (the default is Serverless)")


def _database(source, name, props, parameters, resource, traffic):
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
        what = "Secrets Manager: the database password RDS manages"
        lines.append(Line(what, price("secrets_manager_per_secret_month"), "serving", name))
    return lines  # fmt: skip


def _bucket(source, name, props, parameters, resource, traffic):
    if name == "Lake":
        puts = traffic.tracked_symbols * WEEKDAYS  # each symbol's object rewritten once a session
        gets = traffic.api_calls("backtest") * 0.3  # ranges older than PostgreSQL's
        stored = traffic.lake_gb * price("s3_standard_per_gb_month") + puts / 1000 * price("s3_put_per_thousand")
        return [
            Line(f"S3 lake: {traffic.lake_gb:g} GB stored, {puts:,.0f} object writes", stored, "batch", name),
            Line(f"S3 lake: {gets:,.0f} reads by the backtest API", gets / 1000 * price("s3_get_per_thousand"), "serving", name),
        ]  # fmt: skip
    # The dashboard's files (a few hundred KB), read by CloudFront on a cache miss.
    cost = 0.001 * price("s3_standard_per_gb_month") + traffic.page_views / 1000 * 0.05 * price("s3_get_per_thousand")
    return [Line("S3 dashboard bucket", cost, "serving", name)]


def _table(source, name, props, parameters, resource, traffic):
    if props.get("BillingMode") != "PAY_PER_REQUEST":
        raise UnknownResource(f"{source}:{name}: provisioned DynamoDB capacity is not modelled")
    api = traffic.api_calls("alerts")
    checks = traffic.checks()
    # A check reads every enabled rule from the index (eventually consistent: half a unit
    # per 4 KB) and the registry; each firing is claimed, taken, recorded (event and record)
    # and its rule's state written; the check's record takes a write per shard and delivery.
    reads = api * 2 + checks * (traffic.alert_rules * traffic.rule_kb / 4 * 0.5 + 8)
    writes = api * 0.2 * 2 + traffic.firings * 5 + traffic.work_units()
    cost = (
        reads / 1e6 * price("dynamodb_on_demand_per_million_reads")
        + writes / 1e6 * price("dynamodb_on_demand_per_million_writes")
        + 0.01 * price("dynamodb_per_gb_month")
    )
    return [Line(f"DynamoDB on-demand ({reads / 1e6:.2f}M reads, {writes / 1e6:.2f}M writes)", cost, "serving", name)]


def _user_pool(source, name, props, parameters, resource, traffic):
    if props.get("UserPoolTier", "ESSENTIALS") != "LITE":
        raise UnknownResource(f"{source}:{name}: only the Lite plan is modelled")
    beyond = max(0, traffic.users - price("cognito_lite_free_mau"))
    emails = traffic.users * 0.2  # sign-up codes and resets
    ses = emails / 1000 * price("ses_per_thousand") if parameters.get("SesIdentityArn") else 0.0
    what = f"Cognito user pool, Lite ({traffic.users:,} monthly active users)"
    return [Line(what, beyond * price("cognito_lite_per_mau") + ses, "serving", name)]


def _distribution(source, name, props, parameters, resource, traffic):
    requests = traffic.total_requests() + traffic.page_views * 8
    gb = sum(traffic.requests[s] * traffic.response_kb[s] for s in traffic.requests) / 1024 / 1024
    gb += traffic.page_views * 0.25 / 1024  # 250 KB a cold page load
    cost = requests / 1e4 * price("cloudfront_https_per_10k") + gb * price("cloudfront_transfer_per_gb")
    usage = {"cloudfront_requests": requests, "cloudfront_gb": gb}
    return [Line(f"CloudFront: {requests / 1e6:.2f}M requests, {gb:.1f} GB out", cost, "serving", name, usage=usage)]


def _api(source, name, props, parameters, resource, traffic):
    endpoint = props.get("EndpointConfiguration")
    endpoint = endpoint.get("Type") if isinstance(endpoint, dict) else endpoint
    calls = traffic.api_calls(source)
    cost = calls / 1e6 * price("api_gateway_rest_per_million")
    lines = [Line(f"{source} API Gateway REST ({endpoint}): {calls:,.0f} calls", cost, "serving", f"{source}:{name}")]
    if props.get("TracingEnabled"):
        traces = calls * traffic.trace_share
        cost = traces / 1e6 * price("xray_traces_per_million")
        what = f"{source} X-Ray: {traces:,.0f} traces ({traffic.trace_share:.0%} of requests)"
        lines.append(Line(what, cost, "serving", f"{source}:{name}", usage={"xray_traces": traces}))
    return lines


def _function(source, name, props, parameters, resource, traffic):
    return function_lines(source, name, props, traffic)


def _alarm(source, name, props, parameters, resource, traffic):
    metrics = len([m for m in props.get("Metrics", []) if "MetricStat" in m]) or 1
    text = json.dumps(props)
    layer = "batch" if any(k in text for k in ("daily-update", "AWS/RDS", "UpdatesCompleted")) else "serving"
    label = _substituted(props.get("AlarmName", name), parameters)
    what = f"CloudWatch alarm {label} ({metrics} metric{'s' * (metrics > 1)})"
    cost = metrics * price("cloudwatch_alarm_per_metric_month")
    return [Line(what, cost, layer, f"{source}:{name}", usage={"alarm_metrics": metrics})]


def _dashboard(source, name, props, parameters, resource, traffic):
    what = "CloudWatch dashboard (the stage's success criteria)"
    return [Line(what, price("cloudwatch_dashboard_per_month"), "serving", name, usage={"dashboards": 1})]


def _queue(source, name, props, parameters, resource, traffic):
    if name != "WorkQueue":
        # Failure and dead-letter queues: a message only when something failed; nobody polls them.
        return [Line(f"SQS queue {name} (a few messages a month)", 0.0, "serving", f"{source}:{name}")]
    # Each unit of work sent, received and deleted; and Lambda's event source polling the
    # queue the rest of the time (long polls of 20 s from 5 pollers).
    requests = traffic.work_units() * 3 + 5 * HOURS * 3600 / 20
    what = f"SQS work queue: {requests / 1e6:.2f}M requests ({traffic.work_units():,.0f} units of work, the event source's polls)"
    return [
        Line(
            what,
            requests / 1e6 * price("sqs_per_million"),
            "serving",
            f"{source}:{name}",
            usage={"sqs_requests": requests},
        )
    ]


PRICERS: dict[str, Pricer] = {
    "AWS::EC2::VPCEndpoint": _vpc_endpoint,
    "AWS::EC2::NatGateway": _nat_gateway,
    "AWS::EC2::EIP": _eip,
    "AWS::ElastiCache::ServerlessCache": _serverless_cache,
    "AWS::ElastiCache::CacheCluster": _cache_node,
    "AWS::RDS::DBInstance": _database,
    "AWS::S3::Bucket": _bucket,
    "AWS::DynamoDB::Table": _table,
    "AWS::Cognito::UserPool": _user_pool,
    "AWS::CloudFront::Distribution": _distribution,
    "AWS::Serverless::Api": _api,
    "AWS::Serverless::Function": _function,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::Dashboard": _dashboard,
    "AWS::SQS::Queue": _queue,
}


def price_resource(source: str, name: str, resource: dict, traffic: Traffic) -> list[Line] | None:
    """The lines of one resource; None when it costs nothing; UnknownResource when unmodelled."""
    kind = resource["Type"]
    if kind in FREE:
        return None
    pricer = PRICERS.get(kind)
    if pricer is None:
        raise UnknownResource(f"{source}:{name}: the cost model does not know {kind}")
    return pricer(source, name, resource.get("Properties", {}), resource.get("_parameters", {}), resource, traffic)


def _substituted(node, parameters: dict) -> str:
    """A name written as ``!Sub "...${Param}..."``, with the parameters' values in it."""
    if isinstance(node, dict) and "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
        text = node["Fn::Sub"]
        for key, value in parameters.items():
            text = text.replace("${" + key + "}", str(value))
        return text
    return str(node)


def _resolve(source, node, parameters):
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in parameters:
        return parameters[node["Ref"]]
    if isinstance(node, dict):
        raise UnknownResource(f"{source}: a size given as {node} cannot be priced")
    return node


# ----------------------------------------------------------------- what the code makes by running


def secret_lines(apps: dict[str, dict]) -> list[Line]:
    """The secrets the functions are configured to read (made by hand, README), one each."""
    ids = set()
    for template in apps.values():
        for resource in template["Resources"].values():
            env = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
            ids.update(v for k, v in env.items() if k.endswith("_SECRET_ID"))
    what = f"Secrets Manager: {len(ids)} secrets the functions read ({', '.join(sorted(ids))})"
    return [Line(what, len(ids) * price("secrets_manager_per_secret_month"), "serving", "config")]


# The share of a month's hours each kind of metric is published in (CloudWatch prorates
# a custom metric by the hours it receives data).
PUBLISHED_HOURS = {
    "requests": 1.0,  # with the API's traffic, every hour
    "always": 1.0,  # every scheduled run, day and night
    "market_hours": 7 * WEEKDAYS / HOURS,  # the hours 09:00-15:59 New York that hold a run, weekdays
    "daily": DAYS / HOURS,  # one run an evening
}


def metric_lines() -> list[Line]:
    """The custom metrics the code publishes (``shared.observability.METRICS``), each
    dimension value a metric of its own, prorated by the hours they are published."""
    from shared.observability import METRICS

    lines = []
    for spec in METRICS:
        streams = len(spec.dimension[1]) if spec.dimension else 1
        share = PUBLISHED_HOURS[spec.published]
        what = f"metric {spec.service}/{spec.name}" + (f" by {spec.dimension[0]} ({streams})" if spec.dimension else "")
        cost = streams * share * price("cloudwatch_metric_per_month")
        lines.append(Line(what, cost, spec.layer, "metrics", usage={"metrics": streams * share}))
    return lines


# Always-free allowances: usage kind -> (allowance, what a unit of it costs, what it is).
FREE_TIER = {
    "lambda_requests": ("free_lambda_requests", 1e-6 * PRICES["lambda_per_million_requests"]["price"], "Lambda requests"),
    "lambda_gb_seconds": ("free_lambda_gb_seconds", PRICES["lambda_per_gb_second_x86"]["price"], "Lambda GB-seconds"),
    "metrics": ("free_cloudwatch_metrics", PRICES["cloudwatch_metric_per_month"]["price"], "CloudWatch metrics"),
    "alarm_metrics": ("free_cloudwatch_alarm_metrics", PRICES["cloudwatch_alarm_per_metric_month"]["price"], "CloudWatch alarms"),
    "dashboards": ("free_cloudwatch_dashboards", PRICES["cloudwatch_dashboard_per_month"]["price"], "CloudWatch dashboards"),
    "logs_gb": ("free_cloudwatch_logs_gb", PRICES["cloudwatch_logs_ingest_per_gb"]["price"] + PRICES["cloudwatch_logs_store_per_gb_month"]["price"], "CloudWatch logs"),
    "xray_traces": ("free_xray_traces", 1e-6 * PRICES["xray_traces_per_million"]["price"], "X-Ray traces"),
    "cloudfront_requests": ("free_cloudfront_requests", 1e-4 * PRICES["cloudfront_https_per_10k"]["price"], "CloudFront requests"),
    "cloudfront_gb": ("free_cloudfront_gb", PRICES["cloudfront_transfer_per_gb"]["price"], "CloudFront data out"),
    "sns_publishes": ("free_sns_publishes", 1e-6 * PRICES["sns_publish_per_million"]["price"], "SNS publishes"),
    "sqs_requests": ("free_sqs_requests", 1e-6 * PRICES["sqs_per_million"]["price"], "SQS requests"),
}  # fmt: skip


def free_tier_lines(lines: list[Line]) -> list[Line]:
    """A credit per always-free allowance, split between the layers as they use it."""
    out: list[Line] = []
    for kind, (allowance, unit_price, what) in FREE_TIER.items():
        by_layer: dict[str, float] = {}
        for line in lines:
            if kind in line.usage:
                by_layer[line.layer] = by_layer.get(line.layer, 0.0) + line.usage[kind]
        used = sum(by_layer.values())
        if not used:
            continue
        covered = min(used, price(allowance))
        for layer, amount in by_layer.items():
            credit = covered * amount / used * unit_price
            note = f"always free: {price(allowance):,g} {PRICES[allowance]['unit'].split(' a month')[0]}"
            out.append(Line(f"free tier: {what}", -credit, layer, "free tier", note))
    return out


@dataclass
class Bill:
    lines: list[Line]
    free: list[str]

    def total(self, layer: str | None = None) -> float:
        return sum(x.monthly for x in self.lines if layer is None or x.layer == layer)

    def observability(self, layer: str | None = "serving") -> float:
        """What watching the deployment costs: alarms, the dashboard, metrics, logs, traces, queues."""
        words = ("alarm", "dashboard", "metric ", "logs", "X-Ray", "SQS", "free tier: CloudWatch", "free tier: X-Ray")
        return sum(
            x.monthly for x in self.lines if any(w in x.what for w in words) and (layer is None or x.layer == layer)
        )


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
    lines.extend(metric_lines())
    calls = traffic.cold_starts * 2
    secret_reads = calls / 1e4 * price("secrets_manager_per_10k_calls")
    lines.append(Line(f"Secrets Manager: {calls:,} reads (at cold starts)", secret_reads, "serving", "config"))
    if traffic.free_tier:
        lines.extend(free_tier_lines(lines))
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
            if round(x.monthly, 2) == 0 and x.monthly <= 0:
                continue
            out.append(f"| {layer} | {x.what}{' (' + x.note + ')' if x.note else ''} | {x.monthly:.2f} |")
    out += [
        f"| | **serving layer** | **{result.total('serving'):.2f}** |",
        f"| | of which watching it (alarms, dashboard, metrics, logs, traces) | {result.observability():.2f} |",
        f"| | batch layer (RDS, the lake, the daily update) | {result.total('batch'):.2f} |",
        f"| | everything | {result.total():.2f} |",
        "",
        f"Traffic: {', '.join(f'{s} {n:,}' for s, n in traffic.requests.items())} API requests a month "
        f"({traffic.total_requests():,}), {traffic.edge_share:.0%} answered at the edge, {traffic.users:,} users, "
        f"{traffic.alert_rules:,} alert rules, {traffic.tracked_symbols:,} tracked symbols, a {traffic.lake_gb:g} GB lake"
        f"{', always-free allowances counted' if traffic.free_tier else ', no free tier'}. "
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


def traffic_from(args, traffic: Traffic) -> Traffic:
    custom: dict = {}
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
    if args.no_free_tier:
        custom["free_tier"] = False
    return replace(traffic, **custom)


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
    parser.add_argument("--no-free-tier", action="store_true", help="count none of the always-free allowances")
    args = parser.parse_args(argv)
    templates = all_templates(args.stage)
    parameters = {"NatGateway": args.nat_gateway} if args.nat_gateway else {}
    traffic = traffic_from(args, Traffic())
    if traffic != Traffic() or parameters:
        result = bill(traffic, templates, parameters)
        print(render("The bill for this traffic", result, traffic, per_million(traffic, templates, parameters)))
        return 0
    result = bill(traffic, templates)
    print(
        render("Default deployment, 1 million API requests a month", result, traffic, per_million(traffic, templates))
    )
    none = bill(replace(traffic, free_tier=False), templates)
    print(
        f"Without the always-free allowances (a stage sharing its account): serving layer "
        f"${none.total('serving'):.2f}, of which watching it ${none.observability():.2f}.\n"
    )
    design = replace(traffic, requests={**traffic.requests, "quote": 25_000_000})
    title = "The design's assumption: 25 million quote requests a month"
    print(render(title, bill(design, templates), design, per_million(design, templates)))
    edge = replace(design, edge_share=0.5)
    title = "25 million quote requests, half answered from CloudFront's cache"
    print(render(title, bill(edge, templates), edge, per_million(edge, templates)))
    nat = bill(traffic, templates, {"NatGateway": "true"})
    print(f"With NatGateway=true: serving layer ${nat.total('serving'):.2f} a month at 1 million requests.")
    print(f"\n{len(result.free)} resources cost nothing of their own: {', '.join(sorted(result.free))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
