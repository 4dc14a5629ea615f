"""What each packaged template gains so that its functions can be run, watched and
alarmed on (``make package`` adds it; Chalice's config cannot express any of it):

- every function: a name of its own (``market-<service>-<stage>-<function>``, so the
  stage's dashboard and the other apps can name it), Lambda's JSON log format at the
  stage's ``LOG_LEVEL`` (system logs at WARN: the platform's start and report lines
  would double the log volume, and its metrics say the same), a log group with a
  retention (``LogRetentionDays``, 30 by default), active tracing, and alarms on its
  ``Errors`` and ``Throttles``;
- every scheduled function: an SQS queue of its own that takes what failed (Lambda's
  on-failure destination, after the retries chosen below, and the EventBridge rule's
  dead-letter queue), an alarm when it holds anything, and an alarm when the run's
  heartbeat metric has been missing for too long (missing data counts as breaching);
- every API: a name per stage, tracing, and alarms on its 5XX rate and p99 latency
  against the goals in ``deploy.json``.

Every alarm notifies the stage's operator topic (``market-data-<stage>-operator``, in
the stateful stack, with the operator's email address as its parameter).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# cfn-lint-serverless rules this project does not follow, each with its reason. They are
# silenced on the resource they concern (its Metadata), never for the whole template.
SILENCED = {
    # Each request already writes one JSON line from the function (route, status, latency,
    # error code); API Gateway's access log would double the log volume and its cost for
    # nothing more. Requests API Gateway answers itself (throttled, refused by the
    # authorizer) are counted by its 4XX metric.
    "ES2000": "the function writes one structured line per request; an access log would double it",
    "WS2001": "the function writes one structured line per request; an access log would double it",
    # A failure queue is the end of the line: it is alarmed on, and read by a person.
    "ES6000": "an on-failure destination: alarmed on and read by the operator, not redriven",
}

# How many times Lambda retries a failed scheduled run, and for how long it may: each
# run's choice, and why.
RETRIES = {
    # Every firing is claimed before it is published (alerts/chalicelib/check.py), so a
    # retry never doubles one; one retry a minute or two later rides out a passing fault,
    # and a run older than 10 minutes is better left to the next check, 15 minutes on.
    "alerts-check": (1, 600),
    # Idempotent (a filled day is not asked for again; writes happen only where a value
    # differs) and one at a time (reserved concurrency 1), so a retry cannot double-write;
    # two retries within the hour, then the failure queue and the operator.
    "daily-update": (2, 3600),
}
# The heartbeat of each scheduled run: its metric, and for how long its absence is
# tolerated (period in seconds, periods). The check runs every 15 minutes around the
# clock (it decides the market's hours itself): no completed check for 45 minutes. The
# update runs every evening: none for 26 hours.
HEARTBEATS = {
    "alerts-check": ("ChecksCompleted", 900, 3),
    "daily-update": ("UpdatesCompleted", 3600, 26),
}
# Run metrics whose sum over two consecutive periods means something is wrong.
RUN_ALARMS = {
    "alerts-check": [("RulesFailed", "rules failed in two checks in a row"), ("DeliveryFailed", "deliveries failed in two checks in a row")],
}  # fmt: skip
LAMBDA_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}
RETENTION = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]


def kebab(logical_id: str) -> str:
    """The Chalice function name of a logical id (``AlertsCheck`` -> ``alerts-check``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id).lower()


def function_names(template: dict, app_name: str, stage: str) -> dict[str, str]:
    """Logical id -> the function's name: the API handler ``<app>-<stage>``, as Chalice
    names it, the others ``<app>-<stage>-<name>``."""
    out = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            out[logical] = f"{app_name}-{stage}" if logical == "APIHandler" else f"{app_name}-{stage}-{kebab(logical)}"
    return out


def operator_topic(stage: str) -> dict:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:market-data-{stage}-operator"}


def alarm(stage: str, name: str, description: str, **properties) -> dict:
    topic = operator_topic(stage)
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": name,
            "AlarmDescription": description,
            "AlarmActions": [topic],
            "OKActions": [topic],
            "TreatMissingData": "notBreaching",
            **properties,
        },
    }


def silence(resource: dict, *rules: str) -> None:
    """Tell cfn-lint which serverless rules do not apply here (``SILENCED`` says why)."""
    checks = resource.setdefault("Metadata", {}).setdefault("cfn-lint", {}).setdefault("config", {})
    checks.setdefault("ignore_checks", []).extend(rules)
    resource["Metadata"]["why-silenced"] = {rule: SILENCED[rule] for rule in rules}


def add_operations(template: dict, service: str, stage: str, env: dict, goals: dict) -> None:
    """Add logging, tracing, failure destinations and alarms to a packaged template."""
    resources = template["Resources"]
    app_name = f"market-{service}"
    template.setdefault("Parameters", {})["LogRetentionDays"] = {
        "Type": "Number",
        "Default": 30,
        "AllowedValues": RETENTION,
        "Description": "days each function's logs are kept",
    }
    names = function_names(template, app_name, stage)
    for logical, name in names.items():
        add_function_operations(resources, logical, name, stage, env)
        events = resources[logical]["Properties"].get("Events", {})
        if any(e["Type"] == "Schedule" for e in events.values()):
            add_schedule_operations(resources, logical, name, service, stage)
        if any(e["Type"] == "SQS" for e in events.values()):
            add_queue_operations(resources, logical, app_name, stage)
    for logical, resource in list(resources.items()):
        if resource["Type"] == "AWS::Serverless::Api":
            add_api_operations(resources, logical, resource, app_name, stage, goals)


def add_function_operations(resources: dict, logical: str, name: str, stage: str, env: dict) -> None:
    function = resources[logical]["Properties"]
    function["FunctionName"] = name
    function["Tracing"] = "Active"
    level = LAMBDA_LOG_LEVELS[str(env.get("LOG_LEVEL", "INFO")).upper()]
    resources[f"{logical}LogGroup"] = {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"LogGroupName": f"/aws/lambda/{name}", "RetentionInDays": {"Ref": "LogRetentionDays"}},
    }
    function["LoggingConfig"] = {
        "LogFormat": "JSON",
        "ApplicationLogLevel": level,
        "SystemLogLevel": "WARN",
        "LogGroup": {"Ref": f"{logical}LogGroup"},
    }
    for metric, what in (("Errors", "failed invocations"), ("Throttles", "throttled invocations")):
        resources[f"{logical}{metric}Alarm"] = alarm(
            stage,
            f"{name}-{metric.lower()}",
            f"{name}: {what} (see its log group for why)",
            Namespace="AWS/Lambda",
            MetricName=metric,
            Dimensions=[{"Name": "FunctionName", "Value": {"Ref": logical}}],
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )


def add_schedule_operations(resources: dict, logical: str, name: str, service: str, stage: str) -> None:
    short = kebab(logical)
    retries, max_age = RETRIES[short]
    queue = f"{logical}Failures"
    resources[queue] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": f"{name}-failures",
            "MessageRetentionPeriod": 1209600,  # 14 days, the most SQS keeps
            "SqsManagedSseEnabled": True,
        },
    }
    silence(resources[queue], "ES6000")
    resources[f"{queue}Policy"] = {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [{"Ref": queue}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        # The schedule's rule sends what it could not deliver (its dead-letter queue).
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": {"Fn::GetAtt": [queue, "Arn"]},
                        "Condition": {
                            "ArnLike": {
                                "aws:SourceArn": {
                                    "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${AWS::StackName}-*"
                                }
                            }
                        },
                    }
                ],
            },
        },
    }
    function = resources[logical]["Properties"]
    function["EventInvokeConfig"] = {
        "MaximumRetryAttempts": retries,
        "MaximumEventAgeInSeconds": max_age,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
    }
    for event in function.get("Events", {}).values():
        if event["Type"] == "Schedule":
            event["Properties"]["DeadLetterConfig"] = {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}
    resources[f"{queue}Alarm"] = alarm(
        stage,
        f"{name}-failures-waiting",
        f"{name}: a run failed after its retries; its event is in the queue {name}-failures",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    metric, period, periods = HEARTBEATS[short]
    dimensions = [{"Name": "service", "Value": service}, {"Name": "stage", "Value": stage}]
    resources[f"{logical}HeartbeatAlarm"] = alarm(
        stage,
        f"{name}-missing",
        f"{name}: no completed run for {period * periods // 60} minutes ({metric} missing)",
        Namespace="MarketData",
        MetricName=metric,
        Dimensions=dimensions,
        Statistic="Sum",
        Period=period,
        EvaluationPeriods=periods,
        DatapointsToAlarm=periods,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
    )
    for metric, what in RUN_ALARMS.get(short, []):
        resources[f"{logical}{metric}Alarm"] = alarm(
            stage,
            f"{name}-{kebab(metric)}",
            f"{name}: {what}",
            Namespace="MarketData",
            MetricName=metric,
            Dimensions=dimensions,
            Statistic="Sum",
            Period=period,
            EvaluationPeriods=2,
            DatapointsToAlarm=2,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )


def add_queue_operations(resources: dict, logical: str, app_name: str, stage: str) -> None:
    """A queue function's event source: the stage's own queue (``<app>-<stage>-work``, in
    the stateful stack, with its dead-letter queue and alarms), and partial batch
    responses, which Chalice never writes: without ``ReportBatchItemFailures`` Lambda
    ignores the handler's ``batchItemFailures`` and one failed record retries the batch."""
    for event in resources[logical]["Properties"]["Events"].values():
        if event["Type"] != "SQS":
            continue
        queue = f"{app_name}-{stage}-{event['Properties']['Queue']['Fn::Sub'].rsplit('-', 1)[-1]}"
        event["Properties"]["Queue"] = {
            "Fn::Sub": f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{queue}"
        }
        event["Properties"]["FunctionResponseTypes"] = ["ReportBatchItemFailures"]


def add_api_operations(resources: dict, logical: str, resource: dict, app_name: str, stage: str, goals: dict) -> None:
    api_name = f"{app_name}-{stage}"
    properties = resource["Properties"]
    properties["Name"] = api_name
    properties["TracingEnabled"] = True
    silence(resource, "ES2000", "WS2001")
    dimensions = [{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": properties["StageName"]}]
    resources[f"{logical}ServerErrorsAlarm"] = alarm(
        stage,
        f"{api_name}-5xx",
        f"{api_name}: over {goals['server_error_rate']:.0%} of requests answered 5XX for 10 minutes",
        Namespace="AWS/ApiGateway",
        MetricName="5XXError",
        Dimensions=dimensions,
        Statistic="Average",  # 5XXError is 0 or 1 a request: its average is the rate
        Period=300,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=goals["server_error_rate"],
        ComparisonOperator="GreaterThanThreshold",
    )
    resources[f"{logical}LatencyAlarm"] = alarm(
        stage,
        f"{api_name}-p99",
        f"{api_name}: p99 latency over {goals['p99_ms']} ms for 15 minutes ({goals['why']})",
        Namespace="AWS/ApiGateway",
        MetricName="Latency",
        Dimensions=dimensions,
        ExtendedStatistic="p99",
        Period=300,
        EvaluationPeriods=3,
        DatapointsToAlarm=3,
        Threshold=goals["p99_ms"],
        ComparisonOperator="GreaterThanThreshold",
    )


def apply_to(template_path: Path, service: str, stage: str, root: Path) -> None:
    """``add_operations`` on a packaged template file, with the stage's config and goals."""
    config = json.loads((root / service / ".chalice" / "config.json").read_text())
    env = {
        **config.get("environment_variables", {}),
        **config["stages"].get(stage, {}).get("environment_variables", {}),
    }
    goals = json.loads((root / service / ".chalice" / "deploy.json").read_text())["alarms"]
    template = json.loads(template_path.read_text())
    add_operations(template, service, stage, env, goals)
    template_path.write_text(json.dumps(template, indent=2))
