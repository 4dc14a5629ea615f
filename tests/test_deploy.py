"""Offline deployment checks: packages, least-privilege policies, templates, secrets, stage config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from devtools.release.iam_scan import BASELINE, function_actions, platform_actions, service_actions
from devtools.release.imports import lambda_functions
from devtools.release.packaging import LAMBDA_LIMIT_UNZIPPED
from devtools.release.stage_config import apply
from tests.apps import ROOT

SERVICES = ["quote", "backtest", "alerts"]


def policy_actions(service: str, policy_file: str) -> list[tuple[str, object]]:
    policy = json.loads((ROOT / service / ".chalice" / policy_file).read_text())
    out = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        out.extend((action, statement["Resource"]) for action in actions)
    return out


def policies_in_use(service: str, stage: str) -> dict[str, set[str]]:
    """Policy file -> the IAM actions the Lambda functions that use it call."""
    config = json.loads((ROOT / service / ".chalice" / "config.json").read_text())["stages"][stage]
    out: dict[str, set[str]] = {}
    for function in lambda_functions(service):
        own = config.get("lambda_functions", {}).get(function, {}).get("iam_policy_file")
        needed = set(function_actions(service, function)) | platform_actions(service, function)
        out.setdefault(own or config["iam_policy_file"], set()).update(needed)
    return out


@pytest.mark.parametrize("stage", ["aws-dev", "aws-prod"])
@pytest.mark.parametrize("service", SERVICES)
def test_each_policy_grants_exactly_the_calls_its_functions_make(service, stage):
    for policy_file, needed in policies_in_use(service, stage).items():
        granted = policy_actions(service, policy_file)
        actions = {a for a, _ in granted}
        assert not [a for a in actions if "*" in a], "no wildcard actions"
        missing = needed - actions
        extra = actions - needed - BASELINE
        assert not missing, f"{service}'s functions call {missing} but {policy_file} does not grant them"
        assert not extra, f"{policy_file} grants {extra} that its functions never call"
        for action, resource in granted:
            if action.split(":")[0] in ("s3", "dynamodb", "sns", "ssm", "secretsmanager", "lambda", "sqs"):
                assert resource != "*", f"{action} must name its resources"
                assert stage in json.dumps(resource) or "rds!db" in json.dumps(resource)


def test_the_scan_sees_calls_made_outside_app_py():
    assert "s3:GetObject" in service_actions("backtest")  # in backtest/chalicelib/lake.py
    assert {"dynamodb:Query", "dynamodb:PutItem", "sns:Publish"} <= set(service_actions("alerts"))
    assert "dynamodb:CreateTable" not in service_actions("alerts")  # the local CLI's, not the Lambda's
    # The quote API invokes the vendor relay; the relay (quote's too) reads the vendor's key.
    assert set(service_actions("quote")) == {"secretsmanager:GetSecretValue", "lambda:InvokeFunction"}


def test_the_backtest_api_can_only_read_and_the_daily_update_has_its_own_role():
    assert set(lambda_functions("backtest")) == {"api_handler", "daily-update"}
    api = function_actions("backtest", "api_handler")
    update = function_actions("backtest", "daily-update")
    assert "s3:GetObject" in api and "s3:PutObject" not in api
    assert "s3:PutObject" in update
    for stage in ("aws-dev", "aws-prod"):
        config = json.loads((ROOT / "backtest" / ".chalice" / "config.json").read_text())["stages"][stage]
        own = config["lambda_functions"]["daily-update"]["iam_policy_file"]
        assert own != config["iam_policy_file"]
        assert "s3:PutObject" not in {a for a, _ in policy_actions("backtest", config["iam_policy_file"])}
    # The alerts authorizer calls no AWS service at all; the check publishes.
    assert set(function_actions("alerts", "bearer_token")) == set()
    assert "sns:Publish" in function_actions("alerts", "alerts-check")


def test_alerts_roles_get_only_the_sns_actions_their_function_needs():
    api = function_actions("alerts", "api_handler")
    check = function_actions("alerts", "alerts-check")
    sns = {a for a in api if a.startswith("sns:")}
    assert sns == {
        "sns:CreateTopic",
        "sns:DeleteTopic",
        "sns:Subscribe",
        "sns:Unsubscribe",
        "sns:ListSubscriptionsByTopic",
    }
    # The planner hands out work; the workers hand out deliveries and notify users.
    assert {a for a in check if a.startswith("sns:")} == {"sns:Publish"}
    worker = function_actions("alerts", "alerts-worker")
    assert {a for a in worker if a.startswith("sns:")} == {"sns:Publish"}
    for stage in ("aws-dev", "aws-prod"):
        config = json.loads((ROOT / "alerts" / ".chalice" / "config.json").read_text())["stages"][stage]
        files = {
            "api_handler": config["iam_policy_file"],
            "alerts-check": config["lambda_functions"]["alerts-check"]["iam_policy_file"],
            "alerts-worker": config["lambda_functions"]["alerts-worker"]["iam_policy_file"],
            "bearer_token": config["lambda_functions"]["bearer_token"]["iam_policy_file"],
        }
        assert len(set(files.values())) == 4, "each alerts function has a role of its own"
        users = f"arn:aws:sns:*:*:market-alerts-{stage}-user-*"
        work = f"arn:aws:sns:*:*:market-alerts-{stage}-work"
        allowed = {"api_handler": [users], "alerts-check": [work], "alerts-worker": [users, work]}
        for function, policy_file in files.items():
            for action, resource in policy_actions("alerts", policy_file):
                if action.startswith("sns:"):
                    # By name, never "*" or another stage's: the users' topics by their prefix, the work topic.
                    named = resource if isinstance(resource, list) else [resource]
                    assert set(named) <= set(allowed[function]), (function, action, resource)
        assert not [
            a
            for a, _ in policy_actions("alerts", files["bearer_token"])
            if a.split(":")[0] not in ("logs", "xray") and not a.startswith("ec2:")
        ]


@pytest.mark.parametrize("service", SERVICES)
def test_no_lambda_gets_cognito_admin_actions(service):
    for function in lambda_functions(service):
        assert not [a for a in function_actions(service, function) if a.startswith("cognito-idp:")], function
    for stage in ("aws-dev", "aws-prod"):
        for policy in (ROOT / service / ".chalice").glob(f"policy-{stage}*.json"):
            assert "cognito-idp:" not in policy.read_text(), policy.name
    # The scan does see them where they are called: the operator's command line.
    from devtools.release.iam_scan import actions_in

    assert {"cognito-idp:AdminCreateUser", "cognito-idp:AdminSetUserPassword"} <= actions_in(
        ROOT / "alerts" / "chalicelib" / "accounts.py"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_chalice_config_uses_the_policy_files(service):
    config = json.loads((ROOT / service / ".chalice" / "config.json").read_text())
    for name, stage in config["stages"].items():
        assert stage["autogen_policy"] is False
        assert (ROOT / service / ".chalice" / stage["iam_policy_file"]).exists()
        assert "log_retention_in_days" not in stage  # Chalice issue 2079: breaks the template
        env = json.dumps(stage.get("environment_variables", {})).lower()
        for secret_word in ("password", 'api_key":', 'secret":'):
            assert secret_word not in env, f"{service}/{name} carries a secret in config.json"
    for stage in ("aws-dev", "aws-prod"):
        settings = config["stages"][stage]
        assert "subnet_ids" not in settings  # per function: only those that reach Redis or PostgreSQL
        vpc = {
            n for n, f in settings["lambda_functions"].items() if f.get("subnet_ids") and f.get("security_group_ids")
        }
        assert (
            vpc
            == {
                "quote": {"api_handler"},
                "backtest": {"api_handler", "daily-update"},
                "alerts": {"alerts-check", "alerts-worker"},
            }[service]
        )
        assert settings["api_gateway_endpoint_type"] == "REGIONAL"


@pytest.mark.parametrize("template", ["stateful.yaml", "web.yaml"])
def test_infra_templates_pass_cfn_lint(template):
    proc = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "cfn-lint") if (ROOT / ".venv/bin/cfn-lint").exists() else "cfn-lint",
            str(ROOT / "infra" / template),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Lambda gives a function one vCPU at 1,769 MB, and CPU in proportion to memory.
FULL_VCPU_MB = 1769


def instances_needed(sizing: dict, memory_mb: int) -> int:
    """Little's law: requests/s x seconds per request, with our measured p99 stretched
    to the function's share of a vCPU, plus the network and upstream time."""
    import math

    latency_ms = sizing["own_p99_ms"] * FULL_VCPU_MB / memory_mb + sizing["upstream_ms"] + sizing["hop_ms"]
    return math.ceil(sizing["target_rps"] * latency_ms / 1000)


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_packages_within_lambda_limits(service, packaged):
    report = packaged(service)
    assert report.problems == []
    assert report.unzipped_bytes < LAMBDA_LIMIT_UNZIPPED
    with zipfile.ZipFile(report.zip_path) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names}
    assert "shared" in tops and "boto3" not in tops and "botocore" not in tops
    # Bytecode for every module, once each: Lambda's task directory is read-only.
    assert len(names) == len(set(names))
    sources = {n for n in names if n.endswith(".py") and n.startswith(("shared/", "chalicelib/"))}
    for source in sources:
        folder, _, name = source.rpartition("/")
        assert f"{folder}/__pycache__/{name[:-3]}.cpython-312.pyc" in names, source
    if service == "backtest":
        assert "pyarrow" in tops
    if service == "alerts":
        # The authorizer verifies RS256 signatures, which PyJWT does with cryptography.
        assert {"jwt", "cryptography"} <= tops
    template = json.loads(report.template_path.read_text())
    apis = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Api"]
    # 100+ requests a second, with a burst of 200+, for every API.
    [settings] = apis[0]["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] >= 100 and settings["ThrottlingBurstLimit"] >= 200
    # A refused token (401/403) must reach a page on another origin as a 401/403, not a CORS failure.
    responses = apis[0]["Properties"]["GatewayResponses"]
    assert responses["DEFAULT_4XX"]["ResponseParameters"]["Headers"]["Access-Control-Allow-Origin"] == "'*'"
    functions = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert all(f["Runtime"] == "python3.12" for f in functions)
    resources = template["Resources"]
    # Only the functions that reach Redis or PostgreSQL are in the VPC, and they may use IPv6 there.
    in_vpc = {
        n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function" and r["Properties"].get("VpcConfig")
    }
    assert (
        in_vpc
        == {
            "quote": {"APIHandler"},
            "backtest": {"APIHandler", "DailyUpdate"},
            "alerts": {"AlertsCheck", "AlertsWorker"},
        }[service]
    )
    assert all(resources[n]["Properties"]["VpcConfig"]["Ipv6AllowedForDualStack"] is True for n in in_vpc)
    # REGIONAL: the dashboard's CloudFront distribution is the one edge in front of it.
    assert apis[0]["Properties"]["EndpointConfiguration"] == "REGIONAL"
    handler = resources["APIHandler"]["Properties"]
    sizing = json.loads((ROOT / service / ".chalice" / "deploy.json").read_text())["sizing"]
    needed = instances_needed(sizing, handler["MemorySize"])
    assert sizing["target_rps"] >= 100
    assert handler["ReservedConcurrentExecutions"] == sizing["reserved_concurrency"]
    assert handler["ReservedConcurrentExecutions"] >= needed, (
        f"{service}: {handler['ReservedConcurrentExecutions']} instances cannot carry {sizing['target_rps']} req/s "
        f"at the measured p99; Little's law needs {needed}"
    )
    if service == "alerts":
        # Each function its own role, as the policy files say: only the API subscribes, only the check publishes.
        def actions(role):
            return {
                a
                for p in resources[role]["Properties"]["Policies"]
                for st in p["PolicyDocument"]["Statement"]
                for a in st["Action"]
            }

        assert {"sns:Subscribe", "sns:CreateTopic"} <= actions("ApiHandlerRole")
        assert "sns:Publish" not in actions("ApiHandlerRole")
        assert "sns:Publish" in actions("AlertsCheckRole") and "sns:Subscribe" not in actions("AlertsCheckRole")
        assert {a.split(":")[0] for a in actions("BearerTokenRole")} == {"logs", "xray"}  # not in the VPC
        # One check at a time: a slow check must not overlap the next one.
        assert resources["AlertsCheck"]["Properties"]["ReservedConcurrentExecutions"] == 1
        [check_schedule] = [e for e in resources["AlertsCheck"]["Properties"]["Events"].values()]
        assert check_schedule["Properties"]["Schedule"] == "rate(15 minutes)"  # it decides the market's hours
        assert resources["AlertsCheck"]["Properties"]["Timeout"] == 120
        # The workers: the stage's work queue, partial batch failures (Chalice writes none), a
        # bounded concurrency (each holds a PostgreSQL connection), a role of their own.
        worker = resources["AlertsWorker"]["Properties"]
        [source] = worker["Events"].values()
        assert source["Type"] == "SQS"
        assert source["Properties"]["Queue"]["Fn::Sub"].endswith(":market-alerts-aws-prod-work")
        assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert source["Properties"]["ScalingConfig"]["MaximumConcurrency"] == 50
        assert {"sns:Publish"} <= actions("AlertsWorkerRole") and "sns:Subscribe" not in actions("AlertsWorkerRole")
        assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= actions("AlertsWorkerRole")
    if service == "backtest":
        # The daily update: one at a time, 15 minutes to wait out a budget, its own role.
        update = resources["DailyUpdate"]["Properties"]
        assert update["ReservedConcurrentExecutions"] == 1 and update["Timeout"] == 900
        assert update["Role"] != handler["Role"]
        [schedule] = [e for e in update["Events"].values() if e["Type"] == "Schedule"]
        # Every evening, weekends too: a day without a session costs no call, and its heartbeat still beats.
        assert schedule["Properties"]["Schedule"] == "cron(30 22 * * ? *)"


def test_deploy_dry_run_points_cloudformation_at_the_artifact_bucket():
    proc = subprocess.run(
        [sys.executable, "-m", "devtools.release.deploy", "quote", "--stage", "aws-prod", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    packaged = json.loads((ROOT / "build" / "aws-prod" / "quote" / "packaged.json").read_text())
    functions = [r for r in packaged["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert functions and all(f["Properties"]["CodeUri"]["Key"].startswith("quote/aws-prod/") for f in functions)
    without_bucket = subprocess.run(
        [sys.executable, "-m", "devtools.release.deploy", "quote", "--stage", "aws-prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert without_bucket.returncode == 2 and "DEPLOY_BUCKET" in without_bucket.stderr


def test_stage_config_takes_the_stack_outputs(tmp_path):
    for service in SERVICES:
        shutil.copytree(
            ROOT / service / ".chalice", tmp_path / service / ".chalice", ignore=shutil.ignore_patterns("deployments")
        )
    outputs = {
        "SubnetIds": "subnet-aaa,subnet-bbb",
        "LambdaSecurityGroupId": "sg-123",
        "RedisUrl": "redis://cache:6379/0",
        "DatabaseUrl": "postgresql://market@db:5432/market",
        "DatabaseSecretArn": "arn:aws:secretsmanager:x:1:secret:rds!db-1",
        "LakeUri": "s3://lake/history",
        "AlertsTable": "market-alerts-prod",
        "AlertsTopicPrefix": "market-alerts-aws-prod-user-",
        "AlertsWorkTopicArn": "arn:aws:sns:us-east-1:1:market-alerts-aws-prod-work",
        "UserPoolId": "us-east-1_Pool123",
        "UserPoolClientId": "client123",
        "SecretPrefix": "market-data/aws-prod/",
    }
    apply(outputs, "aws-prod", root=tmp_path)
    alerts = json.loads((tmp_path / "alerts" / ".chalice" / "config.json").read_text())["stages"]["aws-prod"]
    # Only the check and its workers reach Redis and PostgreSQL: only they are in the VPC.
    assert "subnet_ids" not in alerts and "security_group_ids" not in alerts
    for function in ("alerts-check", "alerts-worker"):
        check = alerts["lambda_functions"][function]
        assert check["subnet_ids"] == ["subnet-aaa", "subnet-bbb"] and check["security_group_ids"] == ["sg-123"]
    for function in ("api_handler", "bearer_token"):
        assert "subnet_ids" not in alerts["lambda_functions"].get(function, {})
    assert alerts["api_gateway_endpoint_type"] == "REGIONAL"
    env = alerts["environment_variables"]
    # The vendor's key is the relay's alone: the others are told which function to invoke.
    assert "POLYGON_API_KEY_SECRET_ID" not in env
    assert env["POLYGON_RELAY_FUNCTION"] == "market-quote-aws-prod-vendor-relay"
    quote = json.loads((tmp_path / "quote" / ".chalice" / "config.json").read_text())["stages"]["aws-prod"]
    relay = quote["lambda_functions"]["vendor-relay"]
    assert relay["environment_variables"] == {"POLYGON_API_KEY_SECRET_ID": "market-data/aws-prod/polygon-api-key"}
    assert "subnet_ids" not in relay  # outside the VPC: it reaches the vendor over IPv4 too
    assert env["REDIS_CLUSTER"] == "1" and env["AWS_DUALSTACK_SERVICES"] == "sns,secretsmanager,lambda"
    assert alerts["xray"] is True
    assert env["ALERTS_TOPIC_PREFIX"] == "market-alerts-aws-prod-user-"
    assert env["ALERTS_WORK_TOPIC_ARN"] == "arn:aws:sns:us-east-1:1:market-alerts-aws-prod-work"
    assert (env["COGNITO_USER_POOL_ID"], env["COGNITO_CLIENT_ID"]) == ("us-east-1_Pool123", "client123")
    assert "AUTH_SECRET_PARAM" not in env
    assert env["DATABASE_SECRET_ARN"].endswith("rds!db-1")


def test_secrets_come_from_secrets_manager_at_run_time(moto_server, monkeypatch):
    from shared.runtime import Runtime

    secrets = moto_server.client("secretsmanager")
    tag = str(id(secrets))
    for name, value in (("polygon-api-key", "pk-123"), ("cursor-secret", "s3cret")):
        secrets.create_secret(Name=f"market-data/t{tag}/{name}", SecretString=value)
    arn = secrets.create_secret(
        Name="rds!db-test-" + tag, SecretString=json.dumps({"username": "market", "password": "p@ss:word"})
    )["ARN"]
    env = {
        "AWS_ENDPOINT_URL": moto_server.url,
        "POLYGON_API_KEY_SECRET_ID": f"market-data/t{tag}/polygon-api-key",
        "CURSOR_SECRET_SECRET_ID": f"market-data/t{tag}/cursor-secret",
        "DATABASE_SECRET_ARN": arn,
        "DATABASE_URL": "postgresql://market@db.example:5432/market",
    }
    runtime = Runtime(env)
    assert runtime.settings.polygon_api_key == "pk-123"
    assert runtime.settings.cursor_secret == "s3cret"
    assert "pk-123" not in json.dumps(runtime.settings.redacted(), default=str)
    assert runtime.database.url == "postgresql://market:p%40ss%3Aword@db.example:5432/market"
    missing = Runtime({**env, "CURSOR_SECRET_SECRET_ID": f"market-data/t{tag}/nope"})
    with pytest.raises(ValueError, match="not found"):
        missing.settings  # noqa: B018 - reading it is the test


def test_deploy_web_dry_run_writes_the_stage_urls_into_the_config(tmp_path):
    endpoints = {s: f"https://{s}123.execute-api.us-east-1.amazonaws.com/api/" for s in ("quote", "backtest", "alerts")}
    (tmp_path / "endpoints.json").write_text(json.dumps(endpoints))
    base = [
        sys.executable,
        "-m",
        "devtools.release.deploy_web",
        "--stage",
        "t",
        "--dry-run",
        "--endpoints",
        str(tmp_path / "endpoints.json"),
    ]
    (tmp_path / "outputs.json").write_text(
        json.dumps({"UserPoolId": "us-east-1_Pool123", "UserPoolClientId": "client123"})
    )
    base += ["--stateful-outputs", str(tmp_path / "outputs.json")]
    proc = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/api/backtest* -> https://backtest123.execute-api.us-east-1.amazonaws.com/api" in proc.stdout
    site = ROOT / "build" / "web" / "t"
    # Through CloudFront: every service at the distribution's own origin; the stage's user pool.
    config = json.loads((site / "config.json").read_text())
    assert config.pop("auth") == {
        "region": "us-east-1",
        "userPoolId": "us-east-1_Pool123",
        "clientId": "client123",
        "endpoint": "https://cognito-idp.us-east-1.amazonaws.com/",
    }
    assert set(config.values()) == {"https://DISTRIBUTION.cloudfront.net"}
    assert {"index.html", "app.css", "src/main.js", "vendor/lightweight-charts.mjs"} <= {
        str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()
    }
    direct = subprocess.run(base + ["--direct"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert direct.returncode == 0, direct.stderr
    config = json.loads((site / "config.json").read_text())
    # The page adds "/api/quote" to the stage URL, as API Gateway serves it.
    assert config["quote"] == "https://quote123.execute-api.us-east-1.amazonaws.com/api"


def test_the_sizing_rule_fails_an_api_too_small_for_its_rate():
    """The check above could never fail on numbers it was written for: show where it does."""
    sizing = {"target_rps": 100, "own_p99_ms": 7.4, "upstream_ms": 5, "hop_ms": 0}
    assert instances_needed(sizing, 256) == 6  # 7.4 x 6.9 + 5 = 56 ms
    assert instances_needed(sizing, 128) == 11  # half the CPU: twice as long
    assert instances_needed({**sizing, "target_rps": 1000}, 256) == 57


def refs(node) -> set[str]:
    """The logical ids a template value refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node:
            found.add(node["Ref"])
        if "Fn::GetAtt" in node:
            found.add(node["Fn::GetAtt"][0])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_every_function_logs_json_keeps_its_logs_traces_and_is_alarmed_on(service, packaged):
    """Derived from the packaged template: whatever functions it has, each one has it all."""
    template = json.loads(packaged(service).template_path.read_text())
    resources = template["Resources"]
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30
    functions = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert functions and alarms
    for name, function in functions.items():
        logging_config = function["LoggingConfig"]
        assert logging_config["LogFormat"] == "JSON" and logging_config["ApplicationLogLevel"] == "INFO"
        group = resources[logging_config["LogGroup"]["Ref"]]["Properties"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group["LogGroupName"] == f"/aws/lambda/{function['FunctionName']}"
        assert function["Tracing"] == "Active"
        watched = {a["MetricName"] for a in alarms if a["Namespace"] == "AWS/Lambda" and name in refs(a["Dimensions"])}
        assert watched == {"Errors", "Throttles"}, name
        for a in alarms:
            assert a["AlarmActions"] == a["OKActions"] and "-operator" in json.dumps(a["AlarmActions"])
        schedules = [e for e in function.get("Events", {}).values() if e["Type"] == "Schedule"]
        if not schedules:
            assert "EventInvokeConfig" not in function
            continue
        # A scheduled function: its failures go to a queue of its own, which is alarmed on.
        invoke = function["EventInvokeConfig"]
        destination = invoke["DestinationConfig"]["OnFailure"]
        assert destination["Type"] == "SQS"
        [queue] = refs(destination["Destination"])
        assert resources[queue]["Type"] == "AWS::SQS::Queue"
        assert invoke["MaximumRetryAttempts"] in (0, 1, 2) and invoke["MaximumEventAgeInSeconds"] <= 3600
        assert all(refs(e["Properties"]["DeadLetterConfig"]) == {queue} for e in schedules)
        assert any(queue in refs(a["Dimensions"]) and a["Namespace"] == "AWS/SQS" for a in alarms)
        # And when its heartbeat goes missing, someone is told: missing data is breaching.
        heartbeat = [a for a in alarms if a["Namespace"] == "MarketData" and a["TreatMissingData"] == "breaching"]
        assert heartbeat and all(a["ComparisonOperator"] == "LessThanThreshold" for a in heartbeat)
    apis = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Serverless::Api"]
    for api in apis:
        assert api["TracingEnabled"] is True and api["Name"] == f"market-{service}-aws-prod"
        on_api = {(a["MetricName"], a.get("ExtendedStatistic")) for a in alarms if a["Namespace"] == "AWS/ApiGateway"}
        assert on_api == {("5XXError", None), ("Latency", "p99")}


@pytest.mark.slow
def test_the_serverless_rules_fail_a_template_that_breaks_them(packaged, tmp_path):
    """The lint that passes above can fail: without tracing and a failure destination it does."""
    from devtools.release.packaging import lint

    template = json.loads(packaged("alerts").template_path.read_text())
    del template["Resources"]["AlertsCheck"]["Properties"]["EventInvokeConfig"]
    template["Resources"]["APIHandler"]["Properties"]["Tracing"] = "PassThrough"
    broken = tmp_path / "sam.json"
    broken.write_text(json.dumps(template))
    [problem] = lint(broken)
    assert "ES1007" in problem and "WS1000" in problem
