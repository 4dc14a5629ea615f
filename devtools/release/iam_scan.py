"""Which AWS calls a service's Lambda can make, read from its code.

Chalice's policy generator only reads ``app.py`` and misses calls made in
``chalicelib/``, ``shared/`` or through lazily created clients. This follows the
imports from a service's ``app.py`` (``devtools.release.imports``: relative ones,
imports inside functions, and only the ``Runtime`` properties the app uses) and
maps the boto3 methods it finds to IAM actions.
"""

from __future__ import annotations

import ast
from pathlib import Path

from devtools.release.imports import ROOT, function_files, lambda_functions, service_files

# boto3 method -> IAM actions. TransactWriteItems needs the item actions it carries.
METHOD_ACTIONS = {
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "query": {"dynamodb:Query"},
    "get_item": {"dynamodb:GetItem"},
    "put_item": {"dynamodb:PutItem"},
    "update_item": {"dynamodb:UpdateItem"},
    "delete_item": {"dynamodb:DeleteItem"},
    "batch_writer": {"dynamodb:BatchWriteItem"},
    "create_table": {"dynamodb:CreateTable"},
    "list_tables": {"dynamodb:ListTables"},
    "publish": {"sns:Publish"},
    "publish_batch": {"sns:Publish"},
    "create_topic": {"sns:CreateTopic"},
    "delete_topic": {"sns:DeleteTopic"},
    "subscribe": {"sns:Subscribe"},
    "unsubscribe": {"sns:Unsubscribe"},
    "list_subscriptions_by_topic": {"sns:ListSubscriptionsByTopic"},
    "get_subscription_attributes": {"sns:GetSubscriptionAttributes"},
    # An operator's (the alerts command line): no Lambda may reach them.
    "admin_create_user": {"cognito-idp:AdminCreateUser"},
    "admin_set_user_password": {"cognito-idp:AdminSetUserPassword"},
    "admin_delete_user": {"cognito-idp:AdminDeleteUser"},
    "create_user_pool": {"cognito-idp:CreateUserPool"},
    "create_user_pool_client": {"cognito-idp:CreateUserPoolClient"},
    "get_parameters": {"ssm:GetParameters"},
    "get_secret_value": {"secretsmanager:GetSecretValue"},
    "invoke": {"lambda:InvokeFunction"},
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# What every function needs whatever its code does: logs, ENIs for the VPC, and the
# traces Lambda's active tracing writes with the function's role.
BASELINE = {
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
# What Lambda does with a scheduled function's role: send a failed run to its on-failure
# destination (an SQS queue of its own).
FAILURE_DESTINATION = {"sqs:SendMessage"}
# What Lambda's SQS event source does with a queue function's role: read its queue.
EVENT_SOURCE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def actions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            found |= METHOD_ACTIONS.get(method, set())
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                found |= METHOD_ACTIONS.get(node.args[0].value, set())
            if method == "transact_write_items":
                found.add("dynamodb:TransactWriteItems")
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value in TRANSACT_ITEM_ACTIONS:
                    found.add(TRANSACT_ITEM_ACTIONS[key.value])
    # Transaction item keys count only in modules that run transactions.
    if "dynamodb:TransactWriteItems" not in found:
        found -= set(TRANSACT_ITEM_ACTIONS.values())
    found.discard("dynamodb:TransactWriteItems")  # not an IAM action: the item actions are
    return found


def service_actions(service: str) -> dict[str, set[str]]:
    """IAM action -> the files that need it."""
    out: dict[str, set[str]] = {}
    for path in sorted(service_files(service)):
        for action in actions_in(path):
            out.setdefault(action, set()).add(str(path.relative_to(ROOT)))
    return out


def function_actions(service: str, function: str) -> dict[str, set[str]]:
    """IAM action -> the files that need it, for one of the app's Lambda functions."""
    out: dict[str, set[str]] = {}
    for path in sorted(function_files(service, lambda_functions(service)[function])):
        for action in actions_in(path):
            out.setdefault(action, set()).add(str(path.relative_to(ROOT)))
    return out


def platform_actions(service: str, function: str) -> set[str]:
    """What the platform needs of one function's role beyond its code's calls."""
    from devtools.release.imports import decorated_functions

    if function in decorated_functions(service, "schedule"):
        return FAILURE_DESTINATION
    if function in decorated_functions(service, "on_sqs_message"):
        return EVENT_SOURCE
    return set()
